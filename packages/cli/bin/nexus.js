#!/usr/bin/env node
// Plain-JS entry: the TypeScript sources in a checkout (Node 22.18+ strips types outside
// node_modules), the built CLI (dist/) when installed from the registry (which ships no src/).
import { existsSync } from 'node:fs';

const source = new URL('../src/main.ts', import.meta.url);
const { main } = await import(existsSync(source) ? source.href : '../dist/main.js');
process.exitCode = await main(process.argv.slice(2));
