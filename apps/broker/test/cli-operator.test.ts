/**
 * `nexus <operator command>` from the broker's CLI reaches the operator CLI (packages/cli), so one
 * `nexus` serves both in a broker install; the operator CLI's own suite covers the commands.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { baseEnv, runCli } from './cli-helpers.ts';

describe('nexus: operator commands are handed to the operator CLI', () => {
  it('runs `nexus completion bash` and `nexus validate` through it, with its exit codes', async () => {
    const completion = await runCli(['completion', 'bash'], baseEnv());
    assert.equal(completion.code, 0, completion.stderr);
    assert.match(completion.stdout, /complete -F _nexus nexus/);
    const invalid = await runCli(['validate', '-f', '/nonexistent/nexus.yaml'], baseEnv());
    assert.equal(invalid.code, 1, 'the operator CLI refuses a missing file');
    assert.match(invalid.stderr, /nexus\.yaml/);
  });

  it('keeps the broker-host commands local (audit verify, --help)', async () => {
    const help = await runCli(['--help'], baseEnv());
    assert.equal(help.code, 0);
    assert.match(help.stdout, /serve \[--no-migrate\]/);
    assert.match(help.stdout, /validate\|plan\|apply\|export/);
  });
});
