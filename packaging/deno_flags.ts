/**
 * The Deno flags of the installed aos-unit, from the permission table.
 *   deno run packaging/deno_flags.ts           the union of every subcommand's set, one flag
 *                                              per line (for `deno compile`)
 *   deno run packaging/deno_flags.ts launcher  the /usr/bin/aos-unit launcher of the bundle
 *                                              flavour: each subcommand started with exactly
 *                                              its own set (exact unix socket paths where the
 *                                              table names them), then narrowed again inside
 */
import { FHS_PATHS, unitPaths } from "../src/host/paths.ts";
import {
  denoFlags,
  NOTIFY_SOCKET_DEFAULT,
  permissionsFor,
  type Subcommand,
  SUBCOMMANDS,
  unionPermissions,
} from "../src/permissions.ts";

const ctx = { paths: FHS_PATHS, notifySocket: NOTIFY_SOCKET_DEFAULT };
/** The env every subcommand's dispatch reads before it narrows (see DISPATCH_ENV). */
const dispatchEnv = unionPermissions(ctx).env;

/**
 * Lower memory for every process: a small young generation, no optimizing compiler, and
 * `gc()` for the manager's collections after READY and each minute (commands/run.ts).
 */
export const V8_FLAGS = "--v8-flags=--max-semi-space-size=1,--lite-mode,--expose-gc";

/** Stands for the node operand of console and powerdown while the flags are generated. */
const PLACEHOLDER = "aosunitnodeplaceholder";
/** A unit name no one uses, replaced by the checked --unit (or AOS_UNIT_NAME) in the script. */
const UNIT_PLACEHOLDER = "aosunitunitplaceholder";

/**
 * Subcommands with a bundle of their own (packaging/build_package.sh makes them from
 * src/*_entry.ts): they start on every unit start, or stay resident, and load only their
 * own command.
 */
export const OWN_BUNDLE: Partial<Record<Subcommand, string>> = {
  "lease-hook": "lease-hook.js",
  startup: "startup.js",
  run: "run.js",
  prepare: "prepare.js",
};

/** The launcher splits the flags on spaces: none may contain one, or a quote. */
function plain(flag: string): string {
  if (!/^[A-Za-z0-9_@%+=:,./*-]+$/.test(flag)) throw new Error(`cannot pass ${flag} unquoted`);
  return flag;
}

if (Deno.args[0] === "launcher") {
  const lines = [
    "#!/bin/sh",
    "# aos-unit launcher (bundle flavour): the pinned Deno runtime runs the bundled program.",
    "# Each subcommand starts with exactly its own Deno permissions (aos-unit(8), SECURITY",
    "# MODEL), generated from src/permissions.ts; it narrows itself again once running.",
    "# One malloc arena: Deno's worker threads would each keep one of their own, and the",
    "# manager (resident, mostly idle) gains nothing from them (aos-unit(8), FOOTPRINT).",
    "DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1 MALLOC_ARENA_MAX=1",
    "export DENO_NO_UPDATE_CHECK DENO_NO_PROMPT MALLOC_ARENA_MAX",
    "# No process reads a cache another user could write: no V8 code cache at all (one planted",
    "# in a directory the service user owns would run in the manager, the hooks or a console",
    "# root started), and Deno's other caches only in a directory root alone can create and",
    "# write; everyone else reads them or runs without (under the units HOME is the service",
    "# user's /var/lib/aos-unit, where root must not write).",
    "cache=--no-code-cache; DENO_DIR=/run/aos-unit-root/deno; export DENO_DIR",
  ];
  const flagsOf = (command: Subcommand, node?: string, unit?: string) => {
    const paths = unit === undefined ? ctx.paths : unitPaths(ctx.paths, unit);
    const set = permissionsFor(command, { ...ctx, paths, node });
    const flags = denoFlags({ ...set, env: [...new Set([...set.env, ...dispatchEnv])].sort() });
    return flags.map(plain).join(" ");
  };
  lines.push(
    "# The unit: --unit (any command but the lease hook, whose arguments are dnsmasq's), else",
    "# AOS_UNIT_NAME (a named unit's service and transient units set it), when it is a unit",
    "# name; anything else gets the default unit's grants, and is refused inside. console and",
    "# powerdown may open one node's socket: the node operand, when it is a node name (the",
    "# NODE_NAME rule; anything else gets no socket and is refused inside).",
    "# (dash stops the whole script on a shift past the end: every shift is guarded.)",
    "unit=${AOS_UNIT_NAME:-}",
    "scan() {",
    "  shift",
    "  cand=",
    "  while [ $# -gt 0 ]; do",
    '    case "$1" in',
    "      --timeout) [ $# -gt 1 ] || break; shift ;;",
    "      -u | --unit) [ $# -gt 1 ] || break; shift; unit=$1 ;;",
    "      --unit=*) unit=${1#--unit=} ;;",
    '      --) shift; [ -n "$cand" ] || cand=${1:-}; break ;;',
    "      -*) ;;",
    '      *) [ -n "$cand" ] || cand=$1 ;;',
    "    esac",
    "    shift",
    "  done",
    "}",
    'node=; cand=; case "${1:-}" in lease-hook | \'\') ;; *) scan "$@" ;; esac',
    'case "${1:-}" in console | powerdown)',
    '  case "$cand" in \'\'|-*|*-|*[!A-Za-z0-9-]*) ;; *) [ "${#cand}" -gt 63 ] || node=$cand ;; esac ;;',
    "esac",
    "# failed UNIT_NODE (aos-unit-vm-failed@UNIT_NODE has no environment of the unit).",
    'case "${1:-}" in failed) case "$cand" in *_*) [ -n "$unit" ] || unit=${cand%%_*} ;; esac ;; esac',
    "case \"$unit\" in ''|-*|*-|*[!a-z0-9-]*) unit= ;; esac",
    '[ "${#unit}" -le 20 ] || unit=',
    "# The lease hook has a bundle of its own: dnsmasq starts it after every DHCP ACK, and",
    "# READY waits for its record (the whole program loads ten times slower). So do the",
    "# broker, the manager and prepare: every start loads them, and the manager stays.",
    "program=/usr/lib/aos-unit/aos-unit.js",
    'case "${1:-}" in',
  );
  for (const command of SUBCOMMANDS) {
    if (command === "console" || command === "powerdown") {
      // The placeholder is a valid name, replaced by the checked operand in the script.
      const named = flagsOf(command, PLACEHOLDER).replaceAll(PLACEHOLDER, `'"$node"'`);
      const ofUnit = flagsOf(command, PLACEHOLDER, UNIT_PLACEHOLDER)
        .replaceAll(PLACEHOLDER, `'"$node"'`).replaceAll(UNIT_PLACEHOLDER, `'"$unit"'`);
      lines.push(
        `${command}) if [ -n "$node" ] && [ -n "$unit" ]; then perms='${ofUnit}';`,
        `  elif [ -n "$node" ]; then perms='${named}'; else perms='${flagsOf(command)}'; fi ;;`,
      );
    } else {
      // A named unit's command gets the grants of its own directories (the lease hook's
      // DHCP directory is below none of the default unit's grants).
      const plainFlags = flagsOf(command);
      const unitFlags = flagsOf(command, undefined, UNIT_PLACEHOLDER);
      const perms = unitFlags.includes(UNIT_PLACEHOLDER)
        ? `if [ -n "$unit" ]; then perms='${
          unitFlags.replaceAll(UNIT_PLACEHOLDER, `'"$unit"'`)
        }'; else perms='${plainFlags}'; fi`
        : `perms='${plainFlags}'`;
      const program = OWN_BUNDLE[command]
        ? `; program=/usr/lib/aos-unit/${OWN_BUNDLE[command]}`
        : "";
      lines.push(`${command}) ${perms}${program} ;;`);
    }
  }
  lines.push(
    // --help, --version, typos: the union (cli_parse.ts answers before any subcommand runs).
    `*) perms='${denoFlags(unionPermissions(ctx)).map(plain).join(" ")}' ;;`,
    "esac",
    "# shellcheck disable=SC2086 # $perms and $cache are lists of flags (no spaces inside)",
    `exec /usr/lib/aos-unit/deno run --quiet --no-config --no-lock --cached-only --unstable-net ${V8_FLAGS} $cache $perms "$program" "$@"`,
  );
  console.log(lines.join("\n"));
} else {
  for (const flag of [V8_FLAGS, ...denoFlags(unionPermissions(ctx))]) console.log(flag);
}
