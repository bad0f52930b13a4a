/**
 * No hand-written source file over 400 lines (issue #23; STYLE.md: split a file by concept long
 * before that). Checked over the whole repository: the broker, the packages, the SDKs, the testbed,
 * the benches and the scripts in testdata/. Tests and their fixtures are not counted, nor generated
 * files (protoc's *.pb.go, the Python SDK's sync layer: their first lines say they are generated).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const LIMIT = 400;

const SOURCE = /\.(ts|tsx|mts|js|mjs|cjs|py|go)$/;
/** Test code: test folders, test files of each language, and type declarations. */
const NOT_SOURCE = [
  /(^|\/)(test|tests|node_modules|dist)\//,
  /\.test\.tsx?$/,
  /_test\.go$/,
  /(^|\/)test_[^/]*\.py$/,
  /\.pb\.go$/,
  /\.d\.ts$/,
];
const GENERATED_HEADER = /^(#|\/\/) *(Code generated|Generated from)/im;

/** Lines as `wc -l` counts them. */
const lineCount = (text: string) => text.split('\n').length - (text.endsWith('\n') ? 1 : 0);

/** Source files in the checkout, tracked or new (ignored files left out). */
function sourceFiles(): string[] {
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return listed
    .split('\0')
    .filter((file) => SOURCE.test(file) && !NOT_SOURCE.some((re) => re.test(file)))
    .filter((file) => existsSync(join(ROOT, file)));
}

describe('source file sizes', () => {
  const files = sourceFiles();

  it('finds the source files (a sanity check of the listing)', () => {
    for (const file of [
      'apps/broker/src/container.ts',
      'sdks/testbed/bed.ts',
      'testdata/derive-strategy-vectors.mjs',
    ])
      assert.ok(files.includes(file), file);
    assert.ok(!files.includes('apps/broker/test/harness.ts'), 'test support is not counted');
  });

  it(`has no hand-written source file over ${LIMIT} lines (split it by concept)`, () => {
    const over = files
      .map((file) => ({ file, text: readFileSync(join(ROOT, file), 'utf8') }))
      .filter(({ text }) => !GENERATED_HEADER.test(text.split('\n', 5).join('\n')))
      .map(({ file, text }) => ({ file, lines: lineCount(text) }))
      .filter(({ lines }) => lines > LIMIT)
      .map(({ file, lines }) => `${file}: ${lines}`);
    assert.deepEqual(over, []);
  });
});
