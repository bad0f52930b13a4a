import { readFile } from 'node:fs/promises';

/**
 * Where `npm run build` writes the console's compiled frontend: apps/broker/dist/console/. The
 * compiled broker (dist/bundle/nexus.mjs and the chunks beside it) sits two folders below
 * apps/broker/ and this source file three, so each names the same folder from where it is.
 */
export function defaultAssetsDir(): URL {
  const here = import.meta.url;
  return here.includes('/dist/bundle/')
    ? new URL('../console/', here)
    : new URL('../../../dist/console/', here);
}

/** The files the console page loads, by the name it asks for them under /console/. */
export const ASSETS = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
} as const;
export type AssetName = keyof typeof ASSETS;

/**
 * Reads an asset once, on its first request (not at start-up: most brokers never serve the
 * console), and keeps it. Undefined when the frontend was not built (a source checkout before
 * `npm run build`).
 */
export function assetReader(dir: URL): (name: AssetName) => Promise<Buffer | undefined> {
  const cache = new Map<AssetName, Promise<Buffer | undefined>>();
  return (name) => {
    let pending = cache.get(name);
    if (pending === undefined) {
      pending = readFile(new URL(name, dir)).catch(() => {
        cache.delete(name); // built later: try again on the next request
        return undefined;
      });
      cache.set(name, pending);
    }
    return pending;
  };
}
