// After `tsc`: declaration files keep the sources' `./x.ts` specifiers (TypeScript rewrites them
// only in the emitted JavaScript); point them at the emitted `./x.js` so every TypeScript version
// and resolver reads them.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dist = join(import.meta.dirname, '..', 'dist');
for (const name of readdirSync(dist)) {
  if (!name.endsWith('.d.ts')) continue;
  const path = join(dist, name);
  const text = readFileSync(path, 'utf8');
  const rewritten = text.replace(/(from\s+|import\()(['"])(\.{1,2}\/[^'"]+)\.ts\2/g, '$1$2$3.js$2');
  if (rewritten !== text) writeFileSync(path, rewritten);
}
