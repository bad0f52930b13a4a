import { readdirSync, statSync } from 'node:fs';

/**
 * What `nexus` starts from: the compiled bundle (scripts/build.mjs, run by `npm ci`) when it is
 * newer than every file and folder under src/ (a folder changes when a file is added or
 * deleted), the TypeScript source otherwise, so that an edited source is
 * never shadowed by an old build; NEXUS_FROM_SOURCE=1 always starts from the source. Walking
 * src/ costs a few milliseconds; loading from the bundle saves a few hundred.
 *
 * @param {URL} broker the apps/broker/ folder
 * @param {Record<string, string | undefined>} env
 * @returns {string} a URL to import
 */
export function chooseEntry(broker, env) {
  const source = new URL('src/cli/main.ts', broker).href;
  if (env.NEXUS_FROM_SOURCE === '1') return source;
  const bundle = new URL('dist/bundle/nexus.mjs', broker);
  let built;
  try {
    built = statSync(bundle).mtimeMs;
  } catch {
    return source;
  }
  const src = new URL('src/', broker);
  let files;
  try {
    files = readdirSync(src, { recursive: true });
  } catch {
    return bundle.href; // no source beside the bundle (an image that ships only the bundle)
  }
  for (const file of files) if (statSync(new URL(file, src)).mtimeMs > built) return source;
  return bundle.href;
}
