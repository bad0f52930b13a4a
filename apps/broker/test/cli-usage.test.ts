/**
 * Issue #24 ("The first hour") for the broker's `nexus`: usage errors exit 2 in one line that names
 * the flag or command, suggests the nearest known one and points at --help, whichever of the two
 * CLIs answers; `nexus proxy` lists every configuration problem at once, as `nexus serve` does.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { baseEnv, killAllChildren, runCli, show } from './cli-helpers.ts';

after(killAllChildren);

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

describe('nexus: usage errors (issue #24)', () => {
  it("an unknown command suggests the nearest, the operator CLI's included: provider → providers", async () => {
    const singular = await runCli(['provider', 'list'], baseEnv());
    assert.equal(singular.code, 2, show(singular));
    assert.deepEqual(lines(singular.stderr), [
      'unknown command: provider list. Did you mean `nexus providers list`? Run `nexus --help` for usage.',
    ]);
    const typo = await runCli(['sevre'], baseEnv());
    assert.match(typo.stderr, /Did you mean `nexus serve`\?/, show(typo));
    const verb = await runCli(['keys', 'rotat'], baseEnv());
    assert.equal(verb.code, 2, show(verb));
    assert.match(verb.stderr, /^unknown command: keys rotat\. Did you mean `nexus keys rotate`\?/);
    const bare = await runCli(['admin-keys'], baseEnv());
    assert.equal(bare.code, 2, show(bare));
    assert.deepEqual(lines(bare.stderr), [
      '`nexus admin-keys` needs a subcommand: create, list, revoke. Run `nexus --help` for usage.',
    ]);
  });

  it("an unknown flag exits 2 in one line naming it, without node's parser text", async () => {
    const bogus = await runCli(['serve', '--bogus'], baseEnv());
    assert.equal(bogus.code, 2, show(bogus));
    assert.deepEqual(lines(bogus.stderr), ['unknown flag --bogus. Run `nexus --help` for usage.']);
    const typo = await runCli(['migrate', '--statsu'], baseEnv());
    assert.equal(typo.code, 2, show(typo));
    assert.match(typo.stderr, /^unknown flag --statsu\. Did you mean `--status`\?/);
    // An operator command is answered by the operator CLI, with the same exit code.
    const operator = await runCli(['apply', '--bogus'], baseEnv());
    assert.equal(operator.code, 2, show(operator));
    assert.deepEqual(lines(operator.stderr), [
      'error: unknown flag --bogus. Run `nexus apply --help` for usage.',
    ]);
  });
});

describe('nexus proxy: configuration errors (issue #24)', () => {
  it('lists every problem at once: bad values and missing variables together', async () => {
    const none = await runCli(['proxy'], baseEnv());
    assert.equal(none.code, 2, show(none));
    assert.deepEqual(lines(none.stderr), [
      'nexus proxy: configuration errors:',
      '  NEXUS_URL: required, the broker the proxy gets credentials from',
      "  NEXUS_CLIENT_ID and NEXUS_CLIENT_SECRET: required, the proxy's own agent credential (or NEXUS_API_KEY)",
      '  NEXUS_ROUTES: required, e.g. github=https://api.github.com',
    ]);
    const bad = await runCli(['proxy'], {
      ...baseEnv(),
      NEXUS_URL: 'ftp://broker.example',
      NEXUS_CLIENT_ID: 'proxy-agent',
      PROXY_PORT: '99999',
      TOKEN_CACHE_TTL: 'soon',
      NEXUS_ROUTES: 'github=not-a-url',
    });
    assert.equal(bad.code, 2, show(bad));
    const problems = lines(bad.stderr).slice(1);
    assert.deepEqual(
      problems.map((p) => p.trim().split(':')[0]),
      [
        'NEXUS_URL',
        'TOKEN_CACHE_TTL',
        'PROXY_PORT',
        'NEXUS_CLIENT_ID and NEXUS_CLIENT_SECRET',
        'NEXUS_ROUTES',
      ],
      show(bad),
    );
    assert.ok(!bad.stderr.includes('NEXUS_URL: required'), 'a bad value is not also called missing');
  });
});
