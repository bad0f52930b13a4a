/**
 * Issue #24 ("The first hour"), against a real broker: each error a newcomer meets is one clear
 * line; usage errors (unknown flag, command or subcommand) exit 2, name what was wrong, suggest the
 * nearest spelling and point at --help; a broker that is down is said so plainly; and
 * `connections list` reads oldest first, not in the order of its random ids.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Broker, nexus, SECRETS, startBroker, transcript } from './harness.ts';

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

/** A port nothing listens on: bound once, then let go. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe('the first hour (issue #24)', () => {
  let b: Broker;
  before(async () => {
    b = await startBroker();
  });
  after(() => b.stop());

  test('`nexus apply` with nothing on stdin: one line, no bare "error: " before it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nexus-cli-first-hour-'));
    writeFileSync(
      join(dir, 'nexus-providers.yaml'),
      'providers:\n  - name: first-hour\n    auth_type: api_key\n',
    );
    const r = await nexus(b, ['apply'], { cwd: dir });
    assert.equal(r.code, 1);
    assert.deepEqual(lines(r.stderr), [
      'error: Apply these changes? Refusing to ask without a terminal: pass --yes to confirm, or pipe the answer (yes | nexus …). Stdin is empty.',
    ]);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const none = await nexus(b, ['apply'], { cwd: empty });
    assert.equal(none.code, 1);
    assert.equal(lines(none.stderr).length, 1, none.stderr);
    assert.match(none.stderr, /^error: no manifest: /);
  });

  test('an unknown flag exits 2, as an unknown command does, naming the flag and --help', async () => {
    const bogus = await nexus(b, ['apply', '--bogus']);
    assert.equal(bogus.code, 2);
    assert.deepEqual(lines(bogus.stderr), [
      'error: unknown flag --bogus. Run `nexus apply --help` for usage.',
    ]);
    const typo = await nexus(b, ['plan', '--detailed-exitcod']);
    assert.equal(typo.code, 2);
    assert.match(
      typo.stderr,
      /^error: unknown flag --detailed-exitcod\. Did you mean `--detailed-exitcode`\?/,
    );
    const grouped = await nexus(b, ['-yx', 'apply']);
    assert.equal(grouped.code, 2);
    assert.match(grouped.stderr, /^error: unknown flag -x\. Run `nexus apply --help` for usage\.\n$/);
    const missing = await nexus(b, ['plan', '--file']);
    assert.equal(missing.code, 2, 'a flag without its value is a usage error too');
    assert.match(missing.stderr, /--file <value>' argument missing\. Run `nexus plan --help` for usage\./);
    // With --detailed-exitcode, 2 means "changes": a typo there must not read as one.
    const detailed = await nexus(b, ['plan', '--detailed-exitcode', '--bogus']);
    assert.equal(detailed.code, 1, detailed.stderr);
    assert.match(detailed.stderr, /^error: unknown flag --bogus\./);
    const command = await nexus(b, ['frobnicate']);
    assert.equal(command.code, 2);
    assert.deepEqual(lines(command.stderr), [
      'error: unknown command `frobnicate`. Run `nexus --help` for usage.',
    ]);
  });

  test('an unknown command or subcommand suggests the nearest one, even without credentials', async () => {
    const singular = await nexus(undefined, ['provider', 'list']);
    assert.equal(singular.code, 2);
    assert.deepEqual(lines(singular.stderr), [
      'error: unknown command `provider`. Did you mean `nexus providers`? Run `nexus --help` for usage.',
    ]);
    const short = await nexus(undefined, ['conn', 'list']);
    assert.match(short.stderr, /Did you mean `nexus connections`\?/);
    const verb = await nexus(undefined, ['agents', 'lsit']);
    assert.equal(verb.code, 2);
    assert.deepEqual(lines(verb.stderr), [
      'error: unknown subcommand `nexus agents lsit`. Did you mean `nexus agents list`? Run `nexus agents --help` for usage.',
    ]);
    const bare = await nexus(undefined, ['providers']);
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /`nexus providers` needs a subcommand: list, get, delete, add\./);
  });

  test('a broker that is down: "cannot reach the broker at URL: why (broker_unavailable)"', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    for (const args of [
      ['providers', 'list'],
      ['connections', 'list'],
      ['agents', 'list'],
    ]) {
      const r = await nexus(b, args, { env: { NEXUS_URL: url } });
      assert.equal(r.code, 1);
      assert.deepEqual(lines(r.stderr), [
        `error: cannot reach the broker at ${url}: connect ECONNREFUSED ${url.slice(7)} (broker_unavailable)`,
      ]);
    }
  });

  test('connections list is sorted by creation time, oldest first (the API pages by id)', async () => {
    const api = (method: string, path: string, body?: unknown) =>
      fetch(`${b.url}${path}`, {
        method,
        headers: { 'x-api-key': b.apiKey, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    assert.equal(
      (await api('POST', '/providers', { profile: { name: 'ordered-crm', auth_type: 'api_key' } })).status,
      201,
    );
    const made: string[] = [];
    // Eight random ids come out of the API in creation order once in 40 320 runs.
    for (let i = 0; i < 8; i++) {
      const r = await api('POST', '/v1/request-connection', {
        user_id: `orderly-${i}`,
        provider_name: 'ordered-crm',
        return_url: 'http://localhost:3000/done',
      });
      made.push(((await r.json()) as { connection_id: string }).connection_id);
      await new Promise((r) => setTimeout(r, 5)); // distinct created_at milliseconds
    }
    const json = await nexus(b, ['connections', 'list', 'ordered-crm', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const rows = JSON.parse(json.stdout) as { id: string; created_at: string }[];
    assert.deepEqual(
      rows.map((r) => r.id),
      made,
    );
    const table = await nexus(b, ['connections', 'list', 'ordered-crm']);
    assert.match(table.stdout, /STATUS +CREATED +UPDATED/);
    const ids = lines(table.stdout)
      .slice(1)
      .map((l) => l.split(/ +/)[0]);
    assert.deepEqual(ids, made);
    const help = await nexus(undefined, ['connections', '--help']);
    assert.match(help.stdout, /oldest first, by creation time/);
  });
});

test('no secret value used by this file appeared in any output', () => {
  assert.ok(SECRETS.size >= 1, 'the admin key');
  for (const text of transcript) for (const s of SECRETS) assert.ok(!text.includes(s));
});
