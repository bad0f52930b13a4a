#!/usr/bin/env node
/**
 * Compiles the broker and its dependencies into apps/broker/dist/bundle/nexus.mjs and the chunks
 * beside it (one per dynamic import, loaded when it runs), with the files the source reads beside
 * them at run time (the SQL migrations, gRPC's protos and the provider catalogue).
 * The bundle sits as deep in the tree as the source files that find them relative to
 * themselves, so `new URL('../../../../proto', import.meta.url)` names the same folder from both. `npm ci` runs this (the root `prepare` script); bin/nexus.js
 * starts from the bundle when it is newer than every source file and from the TypeScript
 * otherwise, so an edited source is never shadowed by an old build. Why: loading ~300 source
 * files and ~1,500 package files took most of the start-up time (docs/decisions/0014).
 *
 * Left outside the bundle: packages that read their own files at run time (swagger and its UI's
 * assets, gRPC's protos), the cloud SDKs, which load only when their secret backend is
 * configured, `oidc-provider`, the demo identity provider that only `nexus dev` imports, and the
 * packages the broker imports only on first use (Redis, the SigV4 signer, YAML).
 */
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { buildConsole } from '../console/build.mjs';

/**
 * `node:http` and `node:https` imported as ES modules are required instead. Node builds an ES
 * module's view of a built-in by reading every export, and `node:http`'s WebSocket getters load
 * undici (fetch's implementation): ~15–20 ms and several MB at every start, for exports the broker
 * never uses. A require() returns the exports object without reading them.
 */
const builtinHttpAsCommonJs = {
  name: 'builtin-http-as-commonjs',
  setup(build) {
    build.onResolve({ filter: /^(node:)?https?$/ }, (args) =>
      args.kind === 'import-statement' || args.kind === 'dynamic-import'
        ? { path: args.path.replace(/^(node:)?/, 'node:'), namespace: 'builtin-cjs' }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'builtin-cjs' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

/**
 * Escapes every non-ASCII character left in the output files. V8 keeps each loaded file's source
 * in memory for lazy compilation, and Node decodes a file that is not all ASCII into a string of
 * two bytes per character: a few `§` and `…` in comments kept the largest chunk at 2.8 MB of
 * memory instead of 1.4 at every start. esbuild's ASCII output (its default) already escapes
 * strings, templates, regular expressions and identifiers; what it leaves raw are comments (its
 * dependencies' documentation, and ours inside expressions), where an escape changes nothing.
 */
function asciiOnly(dir) {
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.mjs')) continue;
    const file = join(dir, name);
    const text = readFileSync(file, 'utf8');
    const escaped = text.replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
    if (escaped !== text) writeFileSync(file, escaped);
  }
}

const broker = join(import.meta.dirname, '..');
const dist = join(broker, 'dist');
const out = join(dist, 'bundle');
const started = Date.now();
rmSync(dist, { recursive: true, force: true });
await build({
  entryPoints: { nexus: join(broker, 'src', 'cli', 'main.ts') },
  outdir: out,
  outExtension: { '.js': '.mjs' },
  // Each dynamic import becomes its own file, loaded when it runs (gRPC's server and its packages,
  // the MCP server, `nexus dev`…): in one file, esbuild hoisted the external packages those import
  // to the top, and every start loaded gRPC and protobufjs. Shared modules stay in shared chunks.
  splitting: true,
  // Beside nexus.mjs: modules find files relative to themselves (migrations, protos, catalogue).
  chunkNames: '[name]-[hash]',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  external: [
    '@fastify/swagger',
    '@fastify/swagger-ui',
    '@grpc/*',
    'grpc-health-check',
    '@aws-sdk/*',
    '@google-cloud/*',
    'oidc-provider',
    // Imported only on first use, by a dynamic import of the package itself: Redis (REDIS_URL),
    // the SigV4 signer (a SigV4 provider's first request), the catalogue's YAML parser. Bundled,
    // their ~2 MB were parsed and kept in memory by every start. (A package imported statically by
    // a bundled module that is itself loaded lazily, like the MCP SDK, must stay in the bundle:
    // esbuild would hoist its import to the top of the bundle, loading it at every start.)
    'redis',
    '@redis/*',
    '@smithy/*',
    'yaml',
  ],
  // CommonJS packages inside an ES module still call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __nexusRequire } from 'node:module';\nconst require = __nexusRequire(import.meta.url);",
  },
  plugins: [builtinHttpAsCommonJs],
  legalComments: 'none',
  logLevel: 'warning',
});
asciiOnly(out);
cpSync(join(broker, 'src', 'db', 'migrations'), join(out, 'migrations'), { recursive: true });
cpSync(join(broker, 'src', 'grpc', 'protos'), join(out, 'protos'), { recursive: true });
// The provider catalogue (decision 0015): the broker reads it from beside the bundle.
cpSync(join(broker, '..', '..', 'catalog'), join(out, 'catalog'), { recursive: true });
// The operator console's frontend (apps/broker/console), served at /console from dist/console.
await buildConsole(join(dist, 'console'));
console.log(`apps/broker/dist/bundle/nexus.mjs built in ${Date.now() - started} ms`);
