#!/usr/bin/env node
// A plain-JS entry so that Node's compile cache is on before any TypeScript is loaded: cached
// modules skip type stripping, which roughly halves start-up time (docs/performance.md).
// The version is checked first and everything else is imported dynamically: a static import of
// `enableCompileCache` would fail on an older Node while linking, before any line here runs.
const NODE_MAJOR = 24;
if (Number(process.versions.node.split('.')[0]) < NODE_MAJOR) {
  console.error(
    `nexus needs Node.js ${NODE_MAJOR} or later (this is ${process.version}); \`npm start\` and \`npx nexus\` run it on the Node ${NODE_MAJOR} that \`npm ci\` installs.`,
  );
  process.exit(1);
}
const { enableCompileCache } = await import('node:module');
enableCompileCache();
const { chooseEntry } = await import('./choose-entry.js');
const { main } = await import(chooseEntry(new URL('../', import.meta.url), process.env));
process.exitCode = await main(process.argv.slice(2));
