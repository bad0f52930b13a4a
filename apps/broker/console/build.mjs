/**
 * Compiles the operator console (src/main.ts, Preact with htm templates) into one script and one
 * stylesheet for the broker to serve at /console: `app.js` and `app.css` in `outdir`. Run by
 * apps/broker/scripts/build.mjs (so by `npm ci` and `npm run build`), and by the console's browser
 * test before it starts. Everything the page needs is in these two files: no third-party origin
 * at run time, no eval, no inline script (the CSP in src/modules/console/console.page.ts).
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const here = import.meta.dirname;

/** @param {string} outdir */
export async function buildConsole(outdir) {
  mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints: [join(here, 'src', 'main.ts')],
    outfile: join(outdir, 'app.js'),
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: ['chrome120', 'firefox120', 'safari17'],
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  copyFileSync(join(here, 'src', 'app.css'), join(outdir, 'app.css'));
}

if (process.argv[1] === import.meta.filename) {
  const outdir = process.argv[2] ?? join(here, '..', 'dist', 'console');
  await buildConsole(outdir);
  console.log(`console built into ${outdir}`);
}
