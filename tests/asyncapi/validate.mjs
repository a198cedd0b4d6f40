// Parse an AsyncAPI document with the official parser (@asyncapi/parser) and print its
// diagnostics. Exit 0 when no diagnostic has severity error (warnings are printed too),
// 1 when some has, 2 on bad usage. Usage: node validate.mjs docs/asyncapi.json
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { DiagnosticSeverity, Parser } from "@asyncapi/parser";

const NAMES = {
  [DiagnosticSeverity.Error]: "error",
  [DiagnosticSeverity.Warning]: "warning",
  [DiagnosticSeverity.Information]: "info",
  [DiagnosticSeverity.Hint]: "hint",
};

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate.mjs ASYNCAPI_FILE");
  process.exit(2);
}
const source = resolve(file);
const { document, diagnostics } = await new Parser().parse(await readFile(source, "utf8"), {
  source,
});
const counts = { error: 0, warning: 0, info: 0, hint: 0 };
for (const d of diagnostics) {
  const severity = NAMES[d.severity] ?? String(d.severity);
  counts[severity] = (counts[severity] ?? 0) + 1;
  const where = d.path.length ? d.path.join(".") : "(document)";
  const line = d.range ? `:${d.range.start.line + 1}` : "";
  console.log(`${severity} ${d.code} at ${where} (${file}${line}): ${d.message}`);
}
const accepted = document !== undefined && counts.error === 0;
console.log(
  `${accepted ? "valid" : "INVALID"}: ${counts.error} errors, ${counts.warning} warnings, ` +
    `${counts.info} infos, ${counts.hint} hints`,
);
process.exit(accepted ? 0 : 1);
