import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { ConfigError, loadConfig } from './load.ts';

const key = () => randomBytes(32).toString('base64');

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env, '/srv');
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return [...error.problems];
  }
  assert.fail('expected a ConfigError');
}

describe('loadConfig', () => {
  it('starts on embedded defaults with nothing set', () => {
    const config = loadConfig({}, '/srv');
    assert.equal(config.mode, 'development');
    assert.equal(config.http.host, '127.0.0.1');
    assert.equal(config.http.port, 8080);
    assert.deepEqual(config.database, { kind: 'sqlite', file: '/srv/.nexus/nexus.db' });
    assert.equal(config.keys.keyFile, '/srv/.nexus/keys.json');
    assert.equal(config.keys.generateIfMissing, true);
    assert.equal(config.secretBackend.kind, 'internal');
    assert.equal(config.http.baseUrl, 'http://127.0.0.1:8080');
  });

  it('Vault Kubernetes auth: one way to log in, and a token file that can be read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nexus-k8s-'));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'sa-jwt');
    const vault = { SECRET_BACKEND: 'openbao', VAULT_ADDR: 'http://127.0.0.1:8200', VAULT_K8S_ROLE: 'nexus' };
    const config = loadConfig({ ...vault, VAULT_K8S_TOKEN_FILE: tokenFile }, '/srv');
    assert.deepEqual(config.secretBackend.kind === 'openbao' && config.secretBackend.auth, {
      method: 'kubernetes',
      role: 'nexus',
      tokenFile,
      mount: 'kubernetes',
    });
    const missing = problemsOf({ ...vault, VAULT_K8S_TOKEN_FILE: join(dir, 'absent') });
    assert.ok(
      missing.some(
        (p) => p.startsWith('VAULT_K8S_TOKEN_FILE:') && p.includes('automountServiceAccountToken'),
      ),
      missing.join('\n'),
    );
    // A line break pasted inside the token: refused at start, without quoting it (sent as a
    // header, it failed every request with an error that did).
    const byToken = { SECRET_BACKEND: 'openbao', VAULT_ADDR: 'http://127.0.0.1:8200' };
    const pasted = problemsOf({ ...byToken, VAULT_TOKEN: 'hvs.first\nhvs.second' });
    assert.ok(
      pasted.some((p) => p.startsWith('VAULT_TOKEN:') && p.includes('line breaks')),
      pasted.join('\n'),
    );
    assert.ok(!pasted.join('\n').includes('hvs.'), 'the token is not quoted');
    // A secret file's final newline is not part of the token.
    const fromFile = loadConfig({ ...byToken, VAULT_TOKEN: 'hvs.fromfile\n' }, '/srv').secretBackend;
    assert.ok(fromFile.kind === 'openbao' && fromFile.auth.method === 'token');
    assert.equal(Buffer.from(fromFile.auth.token.reveal()).toString(), 'hvs.fromfile');
    const both = problemsOf({ ...vault, VAULT_K8S_TOKEN_FILE: tokenFile, VAULT_TOKEN: 'hvs.x' });
    assert.ok(
      both.some((p) => p.includes('set one way to log in to Vault')),
      both.join('\n'),
    );
  });

  it('lists every bad variable in one error', () => {
    const problems = problemsOf({
      PORT: 'abc',
      LOG_LEVEL: 'loud',
      ENCRYPTION_KEY: 'short',
      ALLOWED_CIDRS: '10.0.0.0/33,nonsense',
      ALLOWED_RETURN_DOMAINS: 'https://app.example.com',
      DATABASE_URL: 'mysql://x',
    });
    const vars = problems.map((p) => p.split(':')[0]);
    for (const name of [
      'PORT',
      'LOG_LEVEL',
      'ENCRYPTION_KEY',
      'ALLOWED_CIDRS',
      'ALLOWED_RETURN_DOMAINS',
      'DATABASE_URL',
    ]) {
      assert.ok(vars.includes(name), `${name} missing from ${JSON.stringify(problems)}`);
    }
    assert.equal(problems.filter((p) => p.startsWith('ALLOWED_CIDRS')).length, 2);
  });

  it('never echoes a secret value in an error', () => {
    const planted = 'c2VjcmV0LXZhbHVlLXRoYXQtaXMtbm90LTMyLWJ5dGVz';
    const problems = problemsOf({
      ENCRYPTION_KEY: planted,
      STATE_KEY: `${planted}!`,
      API_KEY: 'tiny',
      DATABASE_URL: `postgres://u:${planted}@h/db`,
      // A password in a URL of a variable that is not secret, mistyped (review, 2026-12-07).
      BACKEND_AUTH_URL: 'ftp://svc:TopS3cretPassw0rd@auth.example/check',
    });
    const text = problems.join('\n');
    assert.ok(!text.includes(planted));
    assert.ok(!text.includes('tiny'));
    assert.match(text, /BACKEND_AUTH_URL: /, 'the mistyped URL is reported');
    assert.ok(!text.includes('TopS3cret'), text);
  });

  it('refuses a DATABASE_URL that pg would misread or refuse late, saying how to fix it', () => {
    const cases: Array<[string, RegExp]> = [
      // pg threw "Invalid URL" at the first query, naming nothing (2026-12-08).
      ['postgres://u:Pl4ntedPw@db:99999/nexus', /is not a valid URL: check the host and the port/],
      [
        'postgres://u:Pl4ntedPw@db/nexus?sslmode=require&sslrootcert=/nonexistent/ca.pem',
        /cannot be read: \/nonexistent\/ca.pem/,
      ],
      ['postgres://u:Pl4ntedPw@db:0/nexus', /has port 0/],
      // pg turned TLS on, verifying, for any sslmode it did not know.
      ['postgres://u:Pl4ntedPw@db/nexus?sslmode=allow', /sslmode=allow: use one of disable, prefer, require/],
    ];
    for (const [url, expected] of cases) {
      const problems = problemsOf({ DATABASE_URL: url });
      assert.equal(problems.length, 1, `${url}: ${problems.join('; ')}`);
      assert.match(problems[0]!, /^DATABASE_URL: /);
      assert.match(problems[0]!, expected, url);
      assert.ok(!problems[0]!.includes('Pl4nted'), problems[0]);
    }
    // What pg reads well stays accepted: a socket directory, no host, TLS modes, IPv6, encoded text.
    for (const url of [
      'postgres:///nexus?host=/var/run/postgresql',
      'postgresql://nexus@/nexus',
      'postgres://u:p%40ss%25@db.internal:6432/nexus?sslmode=verify-full',
      // A literal % that is no escape: pg keeps it as it is.
      'postgres://u:50%off@db/nexus',
      'postgres://u:p@[::1]:5432/nexus?sslmode=no-verify',
      'postgres://db',
    ])
      assert.equal(loadConfig({ DATABASE_URL: url }, '/srv').database.kind, 'postgres', url);
  });

  it('refuses production without keys and says how to make them', () => {
    const problems = problemsOf({ NEXUS_ENV: 'production' });
    const text = problems.join('\n');
    assert.match(text, /ENCRYPTION_KEY: required in production/);
    assert.match(text, /STATE_KEY: required in production/);
    assert.match(text, /nexus keys generate/);
    assert.match(text, /BASE_URL: required in production/);
  });

  it('detects production from NODE_ENV and demands https', () => {
    const problems = problemsOf({
      NODE_ENV: 'production',
      ENCRYPTION_KEY: key(),
      STATE_KEY: key(),
      BASE_URL: 'http://broker.example.com',
    });
    assert.deepEqual(problems, ['BASE_URL: must use https in production']);
  });

  it('reads NODE_ENV as other tools do: Production is production, never a silent development mode', () => {
    // Review (2026-12-07): NODE_ENV=Production ran in development mode and printed an admin key.
    for (const NODE_ENV of ['Production', ' PRODUCTION ']) {
      const problems = problemsOf({ NODE_ENV, BASE_URL: 'https://broker.example.com' });
      assert.match(problems.join('\n'), /ENCRYPTION_KEY: required in production/, NODE_ENV);
    }
  });

  it('refuses, in production, a key that is not random and a key used twice, naming only the variables', () => {
    // Review (2026-12-07): an all-zero key in three roles at once was accepted.
    const zero = Buffer.alloc(32).toString('base64');
    const [a, b] = [key(), key()];
    const base = { NEXUS_ENV: 'production', BASE_URL: 'https://broker.example.com' };
    assert.deepEqual(problemsOf({ ...base, ENCRYPTION_KEY: zero, STATE_KEY: a }), [
      'ENCRYPTION_KEY: is not random (all its bytes are the same); generate one with `nexus keys generate`',
    ]);
    assert.deepEqual(problemsOf({ ...base, ENCRYPTION_KEY: a, STATE_KEY: a }), [
      'STATE_KEY: is the same key as ENCRYPTION_KEY; give each role and each ring entry its own key',
    ]);
    assert.deepEqual(problemsOf({ ...base, ENCRYPTION_KEYS: `${a},${b},${a}`, STATE_KEY: key() }), [
      'ENCRYPTION_KEYS[2]: is the same key as ENCRYPTION_KEYS[0]; give each role and each ring entry its own key',
    ]);
    const text = problemsOf({ ...base, ENCRYPTION_KEY: a, STATE_KEY: a, USER_SECRETS_KEY: a }).join('\n');
    assert.ok(!text.includes(a), 'no key in the message');
    assert.doesNotThrow(() =>
      loadConfig({ ...base, ENCRYPTION_KEYS: `${a},${b}`, STATE_KEY: key() }, '/srv'),
    );
  });

  it('refuses a gRPC port another listener has, and a trusted proxy range of every address', () => {
    // Review (2026-12-07): both passed validation and failed only after start-up had run
    // migrations and printed keys (a /0 crashed it; a shared port could hang it).
    const clash = problemsOf({ PORT: '8080', GRPC_PORT: '8080' });
    assert.deepEqual(clash, ['GRPC_PORT: must differ from PORT (gRPC gets a listener of its own)']);
    assert.deepEqual(problemsOf({ PORT: '8080', ADMIN_PORT: '9000', GRPC_PORT: '9000' }), [
      'GRPC_PORT: must differ from PORT and ADMIN_PORT (gRPC gets a listener of its own)',
    ]);
    assert.doesNotThrow(() => loadConfig({ PORT: '8080', GRPC_PORT: '8080', GRPC_HOST: '10.0.0.5' }, '/srv'));
    for (const range of ['0.0.0.0/0', '::/0']) {
      const problems = problemsOf({ TRUSTED_PROXIES: range });
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.match(problems[0]!, /^TRUSTED_PROXIES: .* trusts every address/);
    }
    assert.doesNotThrow(() =>
      loadConfig({ ALLOWED_CIDRS: '0.0.0.0/0', TRUSTED_PROXIES: '10.0.0.0/8' }, '/srv'),
    );
    // Halves of the whole space, or all of IPv4 written as IPv4-mapped IPv6, trust as much as /0
    // (2026-12-08: only /0 itself was refused).
    for (const range of [
      '0.0.0.0/1',
      '128.0.0.0/1',
      '::ffff:0:0/96',
      '::ffff:0.0.0.0/100',
      '::/80',
      '2000::/3',
    ]) {
      const problems = problemsOf({ TRUSTED_PROXIES: `10.0.0.0/8,${range}` });
      assert.equal(problems.length, 1, `${range}: ${JSON.stringify(problems)}`);
      assert.match(problems[0]!, /^TRUSTED_PROXIES: .* so clients in it could set X-Forwarded-For/, range);
    }
    // Real proxy fleets pass: private ranges, Cloudflare's widest, one mapped address, loopback.
    assert.doesNotThrow(() =>
      loadConfig(
        {
          TRUSTED_PROXIES:
            '10.0.0.0/8,172.16.0.0/12,104.16.0.0/13,2a06:98c0::/29,2400:cb00::/32,::ffff:10.0.0.1,::1,fc00::/7,fe80::/10',
        },
        '/srv',
      ),
    );
  });

  it('accepts explicit production keys, the key ring form and named API keys', () => {
    const [a, b] = [key(), key()];
    const config = loadConfig({
      NEXUS_ENV: 'production',
      ENCRYPTION_KEYS: `${a}, ${b}`,
      STATE_KEY: key(),
      BASE_URL: 'https://broker.example.com/',
      API_KEYS: `ops:${'o'.repeat(32)},${'x'.repeat(32)}`,
      DATABASE_URL: 'postgres://u:p@db/nexus',
    });
    assert.equal(config.keys.encryptionKeys?.length, 2);
    assert.equal(config.keys.keyFile, undefined);
    assert.equal(config.http.baseUrl, 'https://broker.example.com');
    assert.deepEqual(
      config.apiKeys.map((k) => k.name),
      ['env:ops', 'env:API_KEYS[1]'],
    );
    assert.equal(config.database.kind, 'postgres');
  });

  it('rejects short or duplicate-named API keys', () => {
    const problems = problemsOf({ API_KEYS: `a:${'k'.repeat(30)},a:${'j'.repeat(30)},b:short` });
    assert.equal(problems.length, 2);
    assert.match(problems.join('\n'), /used twice/);
    assert.match(problems.join('\n'), /shorter than 24/);
  });

  it('freezes the result and never prints keys', () => {
    const secret = key();
    const config = loadConfig({ ENCRYPTION_KEY: secret, STATE_KEY: key(), API_KEY: 'p'.repeat(40) });
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.http));
    assert.throws(() => {
      (config as { mode: string }).mode = 'production';
    });
    const printed = `${JSON.stringify(config)}\n${inspect(config, { depth: 10 })}`;
    assert.ok(!printed.includes(secret));
    assert.ok(!printed.includes('p'.repeat(40)));
    assert.match(printed, /redacted/);
  });

  it('treats empty strings as unset', () => {
    const config = loadConfig({ DATABASE_URL: '', PORT: '', REDIS_URL: '' }, '/srv');
    assert.equal(config.database.kind, 'sqlite');
    assert.equal(config.http.port, 8080);
    assert.equal(config.redisUrl, undefined);
  });
});
