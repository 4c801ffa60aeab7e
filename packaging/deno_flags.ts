/**
 * Prints the Deno permission flags of the installed aos-unit (the union of
 * every subcommand's set, for the FHS paths), one per line. Used by
 * build_package.sh for the launcher and for `deno compile`.
 */
import { FHS_PATHS } from "../src/host/paths.ts";
import { denoFlags, NOTIFY_SOCKET_DEFAULT, unionPermissions } from "../src/permissions.ts";

for (
  const flag of denoFlags(
    unionPermissions({ paths: FHS_PATHS, notifySocket: NOTIFY_SOCKET_DEFAULT }),
  )
) {
  console.log(flag);
}
