/**
 * Prints each failed test case of deno's JUnit reports with the head of its message, so the
 * last lines of a run (often all a CI log keeps) say why, not only what, failed.
 *
 * Usage: deno run --allow-read tests/lib/junit_failures.ts REPORT.xml...
 */
const MAX_LINES = 12;
const MAX_CHARS = 1500;

/** XML's five entities, back to text. */
export const unescape = (s: string) =>
  s.replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&quot;", '"')
    .replaceAll("&apos;", "'").replaceAll("&amp;", "&");

/** The failed cases of one report: name and the head of the failure's message. */
export function failedCases(
  xml: string,
  maxLines = MAX_LINES,
  maxChars = MAX_CHARS,
): { name: string; message: string }[] {
  const out: { name: string; message: string }[] = [];
  const cases = xml.matchAll(/<testcase name="([^"]*)"[^>]*>\s*<failure message="([^"]*)"/g);
  for (const [, name, message] of cases) {
    const text = unescape(message!);
    // A parent whose steps failed says only that; the steps carry the cause.
    if (/^\d+ test steps? failed\.?$/.test(text)) continue;
    out.push({
      name: unescape(name!),
      message: text.split("\n").slice(0, maxLines).join("\n").slice(0, maxChars),
    });
  }
  return out;
}

/** How much of the first failure is repeated last: the later ones often follow from it. */
const FIRST_MAX_LINES = 60;
const FIRST_MAX_CHARS = 6000;

const head = (text: string, lines: number, chars: number) =>
  text.split("\n").slice(0, lines).join("\n").slice(0, chars);

if (import.meta.main) {
  const all = Deno.args.flatMap((path) => {
    try {
      return failedCases(Deno.readTextFileSync(path), FIRST_MAX_LINES, FIRST_MAX_CHARS);
    } catch {
      return [];
    }
  });
  for (const { name, message } of all) {
    console.log(`FAILED ${name}\n${head(message, MAX_LINES, MAX_CHARS).replace(/^/gm, "  | ")}`);
  }
  // Last, where a log cut to its tail still shows it: the first failure, at more length.
  if (all.length > 1) {
    console.log(
      `== the first failure, at more length\nFAILED ${all[0]!.name}\n${
        all[0]!.message.replace(/^/gm, "  | ")
      }`,
    );
  }
}
