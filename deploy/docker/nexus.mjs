#!/usr/bin/env node
// `nexus` inside the container image (Dockerfile): starts the compiled bundle directly.
// apps/broker/bin/nexus.js would compare the bundle with apps/broker/src/ to pick one, and the
// image ships no source. The base image is Node 24, so bin/nexus.js's version check is not needed.
import { enableCompileCache } from 'node:module';

// The cache lives in the temporary directory; on a read-only file system without a writable /tmp
// it is simply not used (enableCompileCache reports the failure, it does not throw).
enableCompileCache();
const { main } = await import('../../apps/broker/dist/bundle/nexus.mjs');
process.exitCode = await main(process.argv.slice(2));
