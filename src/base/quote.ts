/** Shell-style quoting of argv, for logs, messages and dry runs only: never executed. */

export function quoteArgv(argv: readonly string[]): string {
  return argv.map((a) => /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)
    .join(" ");
}
