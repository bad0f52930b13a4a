// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifests spell variables ${VAR}; these are not templates
/**
 * The original CLI's habits (issue #25) against a real broker (SQLite, or PostgreSQL with
 * NEXUS_TEST_DATABASE_URL): no -f reads ./nexus-providers.yaml, `$VAR` is expanded like `${VAR}`,
 * and `apply` is confirmed by --yes or by `yes` piped on stdin; without either it refuses, and
 * never waits for ever on a stdin that stays open and silent.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  type Broker,
  CLI,
  NODE,
  newSecret,
  nexus,
  record,
  SECRETS,
  startBroker,
  transcript,
} from './harness.ts';

const root = mkdtempSync(join(tmpdir(), 'nexus-cli-habits-'));
/** A directory holding `nexus-providers.yaml` with the given providers (one api_key provider each). */
const project = (name: string, providers: string[], extra = '') => {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const body = providers.map((p) => `  - name: ${p}\n    auth_type: api_key\n`).join('');
  writeFileSync(join(dir, 'nexus-providers.yaml'), `providers:\n${body}${extra}`);
  return dir;
};

async function providerView(b: Broker, name: string) {
  const headers = { 'x-api-key': b.apiKey };
  const found = await fetch(`${b.url}/providers/by-name/${name}`, { headers });
  if (found.status !== 200) return undefined;
  const { id } = (await found.json()) as { id: string };
  return (await (await fetch(`${b.url}/providers/${id}`, { headers })).json()) as Record<string, unknown>;
}

describe('the original CLI habits', () => {
  let b: Broker;
  before(async () => {
    b = await startBroker();
  });
  after(() => b.stop());

  test('no -f: ./nexus-providers.yaml is read; `$VAR` carries a secret like `${VAR}`', async () => {
    const secret = newSecret('crm');
    const dir = project(
      'default-file',
      [],
      // The original's unbraced form, and a literal $ that is not a variable (kept as written).
      `  - name: crm\n    client_id: crm-client\n    client_secret: $CRM_CLIENT_SECRET\n    auth_url: https://crm.example/authorize\n    token_url: https://crm.example/token\n    description: costs $5 in $REGION\n`,
    );
    const env = { CRM_CLIENT_SECRET: secret, REGION: 'eu' };
    const plan = await nexus(b, ['plan'], { env, cwd: dir });
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /\+ create provider crm/);
    assert.match(plan.stdout, /client_secret: \*\*\*/);
    assert.match(plan.stdout, /description: "costs \$5 in eu"/);
    const apply = await nexus(b, ['apply', '--yes'], { env, cwd: dir });
    assert.equal(apply.code, 0, apply.stderr);
    const view = await providerView(b, 'crm');
    assert.equal(view?.has_client_secret, true, 'the secret came from $CRM_CLIENT_SECRET');
    assert.equal(view?.description, 'costs $5 in eu');
    const again = await nexus(b, ['plan', '--detailed-exitcode'], { env, cwd: dir });
    assert.equal(again.code, 0, again.stdout);
    // Unset, the stored secret is kept (issue #24; test/unset-secrets.test.ts); validate still names it.
    const unset = await nexus(b, ['plan'], { env: { REGION: 'eu' }, cwd: dir });
    assert.equal(unset.code, 0, unset.stderr);
    assert.match(unset.stdout, /client_secret: kept \(CRM_CLIENT_SECRET not set\)/);
    const validate = await nexus(b, ['validate'], { env: { REGION: 'eu' }, cwd: dir });
    assert.equal(validate.code, 1);
    assert.match(
      validate.stderr,
      /nexus-providers\.yaml:4:20: environment variable CRM_CLIENT_SECRET is not set/,
    );
    // The Go CLI's one-dash spelling of the file flag.
    const goStyle = await nexus(b, ['plan', '-file', join(dir, 'nexus-providers.yaml')], { env });
    assert.equal(goStyle.code, 0, goStyle.stderr);
    assert.match(goStyle.stdout, /= unchanged provider crm/);
  });

  test("the original's flat strategy settings and the api_key default plan as no change once applied", async () => {
    const dir = join(root, 'flat');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'nexus-providers.yaml'),
      `providers:
  - name: flat-query
    auth_type: query_param
    params:
      param_name: key
  - name: flat-header
    auth_type: api_key
    params:
      header_name: X-Token
  - name: plain-key
    auth_type: api_key
`,
    );
    const apply = await nexus(b, ['apply', '--yes'], { cwd: dir });
    assert.equal(apply.code, 0, apply.stderr);
    const view = await providerView(b, 'flat-header');
    const plan = await nexus(b, ['plan', '--detailed-exitcode'], { cwd: dir });
    assert.equal(plan.code, 0, plan.stdout);
    assert.match(plan.stdout, /Plan: 0 to create, 0 to update, 0 to delete, 3 unchanged\./);
    const again = await nexus(b, ['apply', '--yes'], { cwd: dir });
    assert.match(again.stdout, /No changes/);
    assert.equal((await providerView(b, 'flat-header'))?.version, view?.version, 'nothing written');
  });

  test('no -f and no ./nexus-providers.yaml: an error naming the file, nothing read from the broker', async () => {
    const empty = join(root, 'empty');
    mkdirSync(empty);
    for (const command of ['validate', 'plan', 'apply']) {
      const r = await nexus(b, [command, '--yes'], { cwd: empty });
      assert.equal(r.code, 1, command);
      assert.equal(
        r.stderr.trim(),
        `error: no manifest: -f was not given and ${join(empty, 'nexus-providers.yaml')} does not exist. Give one with -f FILE (- for stdin).`,
      );
    }
    const named = await nexus(b, ['plan', '-f', join(empty, 'prod.yaml')]);
    assert.equal(named.code, 1);
    assert.match(named.stderr, /cannot read .*prod\.yaml: no such file/);
  });

  test('`y` lines piped on stdin (as `yes` prints them) confirm apply; so does "yes"', async () => {
    const dir = project('piped-y', ['piped-one']);
    const r = await nexus(b, ['apply'], { cwd: dir, input: 'y\ny\ny\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Apply these changes\? y \[read from stdin\]/);
    assert.match(r.stdout, /✓ created provider piped-one/);
    const dir2 = project('piped-yes', ['piped-one', 'piped-two']);
    const r2 = await nexus(b, ['apply'], { cwd: dir2, input: 'YES' });
    assert.equal(r2.code, 0, r2.stderr);
    assert.ok(await providerView(b, 'piped-two'));
  });

  test('the real `yes | nexus apply`: confirmed, and the endless producer is stopped', async () => {
    const dir = project('real-yes', ['from-yes']);
    const child = spawn('bash', ['-c', `yes | "${NODE}" "${CLI}" apply`], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', HOME: b.dir, NEXUS_URL: b.url, API_KEY: b.apiKey },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += String(d);
    });
    child.stderr.on('data', (d) => {
      out += String(d);
    });
    const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? 1)));
    record(out);
    assert.equal(code, 0, out);
    assert.match(out, /✓ created provider from-yes/);
  });

  test('anything else on stdin cancels and changes nothing', async () => {
    const dir = project('piped-no', ['never-made']);
    for (const input of ['no\n', 'yess\n', '\ny\n']) {
      const r = await nexus(b, ['apply'], { cwd: dir, input });
      assert.equal(r.code, 1, JSON.stringify(input));
      assert.match(
        r.stderr,
        /\(not "y" or "yes"\) \[read from stdin\]\nApply cancelled: nothing was changed\./,
      );
    }
    assert.equal(await providerView(b, 'never-made'), undefined);
  });

  test('no --yes, no answer: an empty stdin refuses at once, a silent open one after a few seconds', {
    timeout: 60_000, // a CLI that waited for ever would hang the suite instead of failing this test
  }, async () => {
    const dir = project('unanswered', ['never-made-either']);
    const empty = await nexus(b, ['apply'], { cwd: dir });
    assert.equal(empty.code, 1);
    assert.match(
      empty.stderr,
      /Refusing to ask without a terminal: pass --yes to confirm, or pipe the answer .*Stdin is empty\./,
    );
    const started = Date.now();
    const silent = await nexus(b, ['apply'], { cwd: dir, holdStdin: true });
    const took = Date.now() - started;
    assert.equal(silent.code, 1);
    assert.match(silent.stderr, /No line arrived on stdin within 5 s\./);
    assert.ok(took < 20_000, `gave up after ${took} ms`);
    const fromStdin = await nexus(b, ['apply', '-f', '-'], {
      input: 'providers:\n  - name: never-made-either\n    auth_type: api_key\n',
    });
    assert.equal(fromStdin.code, 1);
    assert.match(fromStdin.stderr, /The manifest was read from stdin \(-f -\), so stdin cannot answer\./);
    assert.equal(await providerView(b, 'never-made-either'), undefined);
    // Deletions are confirmed the same way.
    const del = await nexus(b, ['providers', 'delete', 'piped-one'], { input: 'y\n' });
    assert.equal(del.code, 0, del.stderr);
    assert.equal(await providerView(b, 'piped-one'), undefined);
  });
});

test('no secret value used by this file appeared in any output', () => {
  assert.ok(SECRETS.size >= 2, 'the admin key and the $VAR secret');
  assert.ok(transcript.length >= 15, `${transcript.length} outputs recorded`);
  for (const text of transcript) for (const s of SECRETS) assert.ok(!text.includes(s));
});
