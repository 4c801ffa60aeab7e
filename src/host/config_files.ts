/** Reads the two configuration files for the (pure) config loader. */

import type { FileText } from "../config/mod.ts";

export function readConfigFile(path: string): FileText {
  try {
    return { path, text: Deno.readTextFileSync(path) };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { path, missing: true };
    if (error instanceof Deno.errors.IsADirectory) return { path, unreadable: "it is a directory" };
    if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
      return { path, unreadable: "permission denied" };
    }
    if (error instanceof TypeError || error instanceof Deno.errors.InvalidData) {
      return { path, unreadable: "not valid UTF-8 text" };
    }
    return { path, unreadable: (error as Error).message };
  }
}
