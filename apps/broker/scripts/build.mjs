#!/usr/bin/env node
/**
 * Compiles the broker and its dependencies into one ES module, apps/broker/dist/bundle/nexus.mjs,
 * with the files the source reads beside it at run time (the SQL migrations and gRPC's protos).
 * The bundle sits as deep in the tree as the source files that find them relative to
 * themselves, so `new URL('../../../../proto', import.meta.url)` names the same folder from both. `npm ci` runs this (the root `prepare` script); bin/nexus.js
 * starts from the bundle when it is newer than every source file and from the TypeScript
 * otherwise, so an edited source is never shadowed by an old build. Why: loading ~300 source
 * files and ~1,500 package files took most of the start-up time (docs/decisions/0014).
 *
 * Left outside the bundle: packages that read their own files at run time (swagger and its UI's
 * assets, gRPC's protos), the cloud SDKs, which load only when their secret backend is
 * configured, and `oidc-provider`, the demo identity provider that only `nexus dev` imports.
 */
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { buildConsole } from '../console/build.mjs';

const broker = join(import.meta.dirname, '..');
const dist = join(broker, 'dist');
const out = join(dist, 'bundle');
const started = Date.now();
rmSync(dist, { recursive: true, force: true });
await build({
  entryPoints: [join(broker, 'src', 'cli', 'main.ts')],
  outfile: join(out, 'nexus.mjs'),
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
  ],
  // CommonJS packages inside an ES module still call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __nexusRequire } from 'node:module';\nconst require = __nexusRequire(import.meta.url);",
  },
  legalComments: 'none',
  logLevel: 'warning',
});
cpSync(join(broker, 'src', 'db', 'migrations'), join(out, 'migrations'), { recursive: true });
cpSync(join(broker, 'src', 'grpc', 'protos'), join(out, 'protos'), { recursive: true });
// The provider catalogue (decision 0015): the broker reads it from beside the bundle.
cpSync(join(broker, '..', '..', 'catalog'), join(out, 'catalog'), { recursive: true });
// The operator console's frontend (apps/broker/console), served at /console from dist/console.
await buildConsole(join(dist, 'console'));
console.log(`apps/broker/dist/bundle/nexus.mjs built in ${Date.now() - started} ms`);
