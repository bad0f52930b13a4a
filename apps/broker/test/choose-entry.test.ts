import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
// @ts-expect-error: a plain-JS module of bin/, typed by its JSDoc
import { chooseEntry } from '../bin/choose-entry.js';

/** A broker folder with a source tree and, optionally, a bundle, with chosen modification times. */
function brokerTree(times: { source: number; bundle?: number }) {
  const root = mkdtempSync(join(tmpdir(), 'nexus-entry-'));
  mkdirSync(join(root, 'src', 'cli'), { recursive: true });
  mkdirSync(join(root, 'src', 'db'), { recursive: true });
  writeFileSync(join(root, 'src', 'cli', 'main.ts'), '');
  writeFileSync(join(root, 'src', 'db', 'client.ts'), '');
  const at = (file: string, seconds: number) => utimesSync(file, seconds, seconds);
  at(join(root, 'src', 'cli', 'main.ts'), 1_000);
  // Folders count too: deleting or adding a source file is an edit.
  for (const dir of ['src', 'src/cli', 'src/db']) at(join(root, dir), 1_000);
  at(join(root, 'src', 'db', 'client.ts'), times.source);
  if (times.bundle !== undefined) {
    mkdirSync(join(root, 'dist', 'bundle'), { recursive: true });
    writeFileSync(join(root, 'dist', 'bundle', 'nexus.mjs'), '');
    at(join(root, 'dist', 'bundle', 'nexus.mjs'), times.bundle);
  }
  return { root, url: pathToFileURL(`${root}/`) };
}

describe('what `nexus` starts from (bin/choose-entry.js)', () => {
  const roots: string[] = [];
  after(() => {
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });
  const choose = (times: { source: number; bundle?: number }, env: Record<string, string> = {}) => {
    const tree = brokerTree(times);
    roots.push(tree.root);
    return String(chooseEntry(tree.url, env)).slice(tree.url.href.length);
  };

  it('starts from the bundle when it is newer than every source file', () => {
    assert.equal(choose({ source: 2_000, bundle: 3_000 }), 'dist/bundle/nexus.mjs');
  });

  it('starts from the source when one source file, however deep, was edited after the build', () => {
    assert.equal(choose({ source: 4_000, bundle: 3_000 }), 'src/cli/main.ts');
  });

  it('starts from the source when a source file was added or deleted after the build', () => {
    const tree = brokerTree({ source: 2_000, bundle: 3_000 });
    roots.push(tree.root);
    rmSync(join(tree.root, 'src', 'db', 'client.ts'));
    assert.equal(String(chooseEntry(tree.url, {})).slice(tree.url.href.length), 'src/cli/main.ts');
  });

  it('starts from the bundle when no source ships beside it', () => {
    const tree = brokerTree({ source: 2_000, bundle: 3_000 });
    roots.push(tree.root);
    rmSync(join(tree.root, 'src'), { recursive: true });
    assert.equal(String(chooseEntry(tree.url, {})).slice(tree.url.href.length), 'dist/bundle/nexus.mjs');
  });

  it('starts from the source without a bundle, or when NEXUS_FROM_SOURCE=1', () => {
    assert.equal(choose({ source: 2_000 }), 'src/cli/main.ts');
    assert.equal(choose({ source: 2_000, bundle: 3_000 }, { NEXUS_FROM_SOURCE: '1' }), 'src/cli/main.ts');
  });
});
