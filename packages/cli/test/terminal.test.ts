/**
 * Terminal behaviour through a real pseudo-terminal (`script` from util-linux): the confirmation
 * prompt, the progress bar, colours (and NO_COLOR), two terminals applying at once (the second
 * write is refused with 409 thanks to If-Match), and login's hidden key prompt.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type Broker,
  CLI,
  inPty,
  NODE,
  newSecret,
  nexus,
  SECRETS,
  startBroker,
  transcript,
  waitFor,
} from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'nexus-cli-tty-'));
const manifest = (name: string, description: string, count = 4) => {
  const path = join(dir, name);
  const providers = Array.from(
    { length: count },
    (_, i) => `  - name: p${i}\n    auth_type: api_key\n    description: ${description}\n`,
  ).join('');
  writeFileSync(path, `scopes:\n  - name: tty:scope\nproviders:\n${providers}`);
  return path;
};
const ESC = '\u001b';

describe('through a pseudo-terminal', () => {
  let b: Broker;
  let env: Record<string, string>;
  before(async () => {
    b = await startBroker();
    env = { NEXUS_URL: b.url, API_KEY: b.apiKey, HOME: b.dir, XDG_CONFIG_HOME: join(b.dir, 'config') };
  });
  after(() => b.stop());

  test('apply asks for confirmation; anything but "yes" changes nothing', async () => {
    const file = manifest('one.yaml', 'first');
    const t = inPty(`${NODE} ${CLI} apply -f ${file}`, env);
    await waitFor(() => t.output().includes('Only "yes" is accepted'), 'the prompt');
    t.child.stdin!.write('no\r');
    assert.equal(await t.done, 1);
    assert.match(t.output(), /Apply cancelled: nothing was changed/);
    assert.equal((await nexus(b, ['plan', '--detailed-exitcode', '-f', file])).code, 2, 'still to do');
  });

  test('"yes" applies, with colours and a progress bar on the terminal', async () => {
    const file = manifest('one.yaml', 'first');
    const t = inPty(`${NODE} ${CLI} apply -f ${file}`, env);
    await waitFor(() => t.output().includes('Only "yes" is accepted'), 'the prompt');
    t.child.stdin!.write('yes\r');
    assert.equal(await t.done, 0, t.output());
    const out = t.output();
    assert.ok(out.includes(`${ESC}[32m+ create provider p0${ESC}[0m`), 'coloured plan line');
    assert.match(out, new RegExp(`\r${ESC}\\[2K\\[#+-*\\] \\d/5 `), 'progress bar redrawn in place');
    assert.match(out, /\[#{24}\] 5\/5 /, 'bar reaches the end');
    assert.match(out, /Apply complete: 5 change\(s\) applied/);
  });

  test('NO_COLOR turns colours off; a pipe gets neither colours nor the bar', async () => {
    const file = manifest('two.yaml', 'second');
    const t = inPty(`${NODE} ${CLI} apply -f ${file} --yes`, { ...env, NO_COLOR: '1' });
    assert.equal(await t.done, 0, t.output());
    assert.doesNotMatch(t.output(), new RegExp(`${ESC}\\[3\\dm`));
    const piped = await nexus(b, ['apply', '-f', manifest('three.yaml', 'third'), '--yes']);
    assert.equal(piped.code, 0);
    assert.ok(!piped.stdout.includes(ESC));
  });

  test('apply without a terminal and without --yes refuses to ask', async () => {
    const r = await nexus(b, ['apply', '-f', manifest('four.yaml', 'fourth')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Refusing to ask without a terminal: pass --yes/);
  });

  test('two terminals apply at once: the stale one gets 409 and a clear message', async () => {
    const mine = manifest('mine.yaml', 'from-terminal-a');
    const theirs = manifest('theirs.yaml', 'from-terminal-b');
    const a = inPty(`${NODE} ${CLI} apply -f ${mine}`, env);
    await waitFor(() => a.output().includes('Only "yes" is accepted'), 'terminal A to show its plan');
    const other = await nexus(b, ['apply', '-f', theirs, '--yes']);
    assert.equal(other.code, 0, other.stderr);
    a.child.stdin!.write('yes\r');
    assert.equal(await a.done, 1);
    const out = a.output();
    assert.match(
      out,
      /failed to update provider p0: provider p0 was changed on the broker after this plan was read \(409 version_conflict\)/,
    );
    assert.match(out, /Run `nexus plan` again/);
    assert.match(out, /not done {2}update provider p3/);
    const plan = await nexus(b, ['plan', '--detailed-exitcode', '-f', theirs]);
    assert.equal(plan.code, 0, 'terminal B’s configuration stands');
  });

  test('login reads the key at a hidden prompt (not echoed)', async () => {
    const t = inPty(`${NODE} ${CLI} login --url ${b.url} --profile tty`, {
      ...env,
      API_KEY: '',
      NEXUS_URL: '',
    });
    await waitFor(() => t.output().includes('Admin API key for'), 'the key prompt');
    await new Promise((r) => setTimeout(r, 100));
    t.child.stdin!.write(`${b.apiKey}\r`);
    assert.equal(await t.done, 0, t.output().replaceAll(b.apiKey, '<KEY>'));
    assert.match(t.output(), /stored profile "tty"/);
    const r = await nexus(b, ['--profile', 'tty', 'scopes', 'list'], { env: { API_KEY: '', NEXUS_URL: '' } });
    assert.equal(r.code, 0, r.stderr);
  });
});

test('no secret value appeared in any terminal output', () => {
  newSecret('unused'); // the set is shared with the harness: the API key is in it
  assert.ok(SECRETS.size >= 2);
  for (const text of transcript) for (const s of SECRETS) assert.ok(!text.includes(s));
});
