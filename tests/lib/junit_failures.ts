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
export function failedCases(xml: string): { name: string; message: string }[] {
  const out: { name: string; message: string }[] = [];
  const cases = xml.matchAll(/<testcase name="([^"]*)"[^>]*>\s*<failure message="([^"]*)"/g);
  for (const [, name, message] of cases) {
    const text = unescape(message!);
    // A parent whose steps failed says only that; the steps carry the cause.
    if (/^\d+ test steps? failed\.?$/.test(text)) continue;
    out.push({
      name: unescape(name!),
      message: text.split("\n").slice(0, MAX_LINES).join("\n").slice(0, MAX_CHARS),
    });
  }
  return out;
}

if (import.meta.main) {
  for (const path of Deno.args) {
    let xml: string;
    try {
      xml = Deno.readTextFileSync(path);
    } catch {
      continue;
    }
    for (const { name, message } of failedCases(xml)) {
      console.log(`FAILED ${name}\n${message.replace(/^/gm, "  | ")}`);
    }
  }
}
