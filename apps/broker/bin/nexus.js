#!/usr/bin/env node
// A plain-JS entry so that Node's compile cache is on before any TypeScript is loaded: cached
// modules skip type stripping, which roughly halves start-up time (docs/performance.md).
import { enableCompileCache } from 'node:module';

enableCompileCache();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
