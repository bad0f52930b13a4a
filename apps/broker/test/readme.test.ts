/**
 * Issue #24: every shell block of README.md, and of the quick start of each SDK README, runs as
 * written, in order, as a newcomer would run it from a fresh clone. A command that stops working
 * fails this test.
 *
 * The convention (for whoever edits a README):
 * - Blocks fenced ```sh (or bash, shell) run with bash `-eo pipefail`, each in its own shell, in a
 *   scratch directory that mirrors the checkout (symlinks to its files: a fresh `./.nexus`, and
 *   files a block writes, such as nexus.yaml, stay out of the tree). Variables a block exports are
 *   seen by the later blocks of the same README. `curl` fails on an HTTP error status.
 * - `<!-- readme-test: skip (reason) -->` as the last non-blank line before a fence skips that
 *   block. Reasons in use: it needs a browser (consent), a real provider (GitHub), other servers
 *   (PostgreSQL, Vault), or it is a test suite itself.
 * - Steps `npm ci` has already done in this checkout are left out (`npm ci`, `npm install` with no
 *   package, `npm run build [-w …]`): running them would rewrite the node_modules others read.
 * - A block that only says `npm start` starts the broker in the background; the test waits until
 *   it is ready and takes the admin key it prints. Later blocks get that key for `nxa_...`, the
 *   broker's free port for `localhost:8080` / `127.0.0.1:8080`, and a scratch folder for `/tmp/`.
 * - A non-shell block whose first line is a comment naming a file (`// quickstart.mjs`) is written
 *   to that file, for the shell blocks after it.
 * Processes a block leaves in the background are stopped at the end.
 * The TypeScript and Python quick starts run against the SDK testbed; the Go one needs a browser
 * (consent at GitHub), so the last suite checks that it is the Example() go test compiles.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADMIN_KEY_PATTERN, freePort, REPO_ROOT } from './cli-helpers.ts';
import { type Block, isShell, readBlocks, startsBroker, withoutSetup } from './readme-blocks.ts';

const READMES: { path: string; section?: string }[] = [
  { path: 'README.md' },
  { path: 'packages/sdk/README.md', section: 'Quick start' },
  { path: 'sdks/python/README.md', section: 'Quick start' },
  { path: 'sdks/go/README.md', section: 'Quick start' },
];
const BLOCK_TIMEOUT_MS = 60_000;

const work = mkdtempSync(join(tmpdir(), 'nexus-readme-'));
const groups: ChildProcess[] = [];
let port = 0;
let adminKey: string | undefined;

/** The checkout seen from the scratch directory: every top-level entry but the dot files. */
function mirrorCheckout(): void {
  for (const name of readdirSync(REPO_ROOT))
    if (!name.startsWith('.')) symlinkSync(join(REPO_ROOT, name), join(work, name));
  mkdirSync(join(work, 'tmp'));
  mkdirSync(join(work, 'home'));
}

/**
 * What a newcomer's shell has: a PATH without the node_modules/.bin that `npm test` puts first (so
 * `node` is the machine's own, as after a clone), a HOME, nothing of this test's own environment.
 */
function shellEnv(): Record<string, string> {
  const path = (process.env.PATH ?? '/usr/bin:/bin')
    .split(':')
    .filter((dir) => !dir.endsWith('node_modules/.bin'))
    .join(':');
  return {
    PATH: path,
    HOME: join(work, 'home'),
    LANG: 'C.UTF-8',
    PORT: String(port),
  };
}

function substitute(text: string): string {
  let out = text
    .replaceAll('localhost:8080', `localhost:${port}`)
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`)
    .replaceAll('/tmp/', `${work}/tmp/`);
  if (adminKey !== undefined) out = out.replaceAll('nxa_...', adminKey);
  return out;
}

/** Runs a child in its own process group (so what it leaves behind can be stopped), output kept. */
function start(command: string, args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(command, args, {
    cwd: work,
    env: shellEnv(),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  groups.push(child);
  let output = '';
  child.stdout!.on('data', (d) => {
    output += String(d);
  });
  child.stderr!.on('data', (d) => {
    output += String(d);
  });
  return { child, output: () => output };
}

async function startBroker(b: Block): Promise<void> {
  const { child, output } = start('npm', ['start']);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null)
      assert.fail(`${b.where}: npm start exited (${child.exitCode}):\n${output()}`);
    const key = ADMIN_KEY_PATTERN.exec(output())?.[0];
    if (key !== undefined) {
      const ready = await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined);
      if (ready?.ok) {
        adminKey = key;
        return;
      }
    }
    if (Date.now() > deadline) assert.fail(`${b.where}: the broker was not ready in 30 s:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function runShell(b: Block, envFile: string): Promise<void> {
  const script = [
    'set -eo pipefail',
    `trap 'export -p > ${JSON.stringify(envFile)}' EXIT`,
    `if [ -f ${JSON.stringify(envFile)} ]; then . ${JSON.stringify(envFile)}; fi`,
    'curl() { command curl --fail-with-body --max-time 20 "$@"; }',
    `cd ${JSON.stringify(work)}`,
    substitute(withoutSetup(b.text)),
  ].join('\n');
  const { child, output } = start('bash', ['-c', script]);
  const timer = setTimeout(() => child.kill('SIGKILL'), BLOCK_TIMEOUT_MS);
  // 'exit', not 'close': a process the block leaves in the background may hold its output open.
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  clearTimeout(timer);
  await new Promise((r) => setTimeout(r, 50)); // the last output still in the pipe
  assert.equal(code, 0, `${b.where} failed (exit ${code}):\n${b.text}\n--- output ---\n${output()}`);
}

before(async () => {
  port = await freePort();
  mirrorCheckout();
});

after(() => {
  for (const child of groups)
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {} // the group has already gone
  rmSync(work, { recursive: true, force: true });
});

for (const readme of READMES) {
  describe(`${readme.path}${readme.section ? ` (${readme.section})` : ''}: its shell blocks run as written`, () => {
    const envFile = join(work, `env-${readme.path.replaceAll('/', '_')}.sh`);
    for (const b of readBlocks(join(REPO_ROOT, readme.path), readme.path, readme.section)) {
      if (b.file !== undefined) {
        test(`${b.where}: written to ${b.file}`, () => writeFileSync(join(work, b.file!), b.text));
        continue;
      }
      if (!isShell(b)) continue;
      const name = `${b.where}: ${b.text.split('\n').find((l) => l.trim() !== '' && !l.startsWith('#'))}`;
      if (b.skip !== undefined) {
        test(name, { skip: b.skip }, () => {});
        continue;
      }
      test(name, async () => {
        if (startsBroker(withoutSetup(b.text))) await startBroker(b);
        else await runShell(b, envFile);
      });
    }
  });
}

describe('README.md: what its skipped blocks rely on', () => {
  test('the proxy route of the README provider exists (issue #24: it was unknown_route)', async () => {
    assert.ok(adminKey, 'the broker of README.md is running');
    const r = await fetch(`http://127.0.0.1:${port}/proxy/github/user/repos`, {
      headers: { 'x-api-key': adminKey, 'x-nexus-connection-id': randomUUID() },
    });
    const body = (await r.json()) as { code?: string; error?: string };
    assert.notEqual(body.code ?? body.error, 'unknown_route', JSON.stringify(body));
    assert.equal(r.status, 404, JSON.stringify(body)); // the connection, which needs a browser, is missing
  });

  test('the scratch directory held the broker data, not the checkout', () => {
    assert.ok(existsSync(join(work, '.nexus', 'keys.json')));
  });
});

describe('sdks/go/README.md: its quick start is the program example_test.go compiles', () => {
  // It needs a browser (consent at GitHub), so it is not run; `go vet` and `go test` compile it
  // (sdks/go/run-tests.sh) as Example(). This keeps the README's copy the one that compiles.
  const body = (source: string, fn: string) =>
    new RegExp(`^func ${fn}\\(\\) \\{\n([\\s\\S]*?)^\\}$`, 'm').exec(source)?.[1];
  const imports = (source: string) => /^import \(\n([\s\S]*?)^\)$/m.exec(source)?.[1];

  test('same imports, and main() is Example() line for line', () => {
    const block = readBlocks(join(REPO_ROOT, 'sdks/go/README.md'), 'sdks/go/README.md', 'Quick start').find(
      (b) => b.lang === 'go',
    );
    assert.ok(block, 'the Quick start has a go block');
    const example = readFileSync(join(REPO_ROOT, 'sdks/go/example_test.go'), 'utf8');
    assert.ok(imports(block.text) !== undefined && body(block.text, 'main') !== undefined, block.where);
    assert.equal(
      imports(block.text),
      imports(example),
      `${block.where}: imports differ from example_test.go`,
    );
    assert.equal(
      body(block.text, 'main'),
      body(example, 'Example'),
      `${block.where}: main() differs from Example()`,
    );
  });
});
