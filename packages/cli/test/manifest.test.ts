// biome-ignore-all lint/suspicious/noTemplateCurlyInString: manifests spell variables ${VAR}; these are not templates
/**
 * Manifest validation without a broker: the published schema, errors at file:line:column, `${VAR}`
 * and `$VAR` interpolation, the original manifest accepted unchanged, and completion scripts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseManifest } from '../src/manifest.ts';
import { newSecret, nexus, REPO, SECRETS, transcript } from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'nexus-cli-manifest-'));
const write = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const EXAMPLES = join(REPO, 'packages', 'cli', 'examples');

test('the JSON Schema is published and is valid JSON', () => {
  const schema = JSON.parse(readFileSync(join(REPO, 'packages/cli/schema/nexus.schema.json'), 'utf8'));
  assert.equal(schema.type, 'object');
  assert.ok(schema.definitions.provider.properties.client_secret);
});

test('the original manifest (providers: with the original profile fields) validates unchanged', async () => {
  const r = await nexus(undefined, ['validate', '-f', join(EXAMPLES, 'nexus-providers.yaml')], {
    env: { GITHUB_CLIENT_SECRET: newSecret('gh'), GOOGLE_CLIENT_SECRET: newSecret('google') },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /valid \(3 objects\)/);
});

test('without -f, validate reads nexus-providers.yaml in the current directory', async () => {
  const r = await nexus(undefined, ['validate'], {
    cwd: EXAMPLES,
    env: { GITHUB_CLIENT_SECRET: newSecret('gh'), GOOGLE_CLIENT_SECRET: newSecret('google') },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'nexus-providers.yaml: valid (3 objects)');
  const elsewhere = await nexus(undefined, ['validate'], { cwd: dir });
  assert.equal(elsewhere.code, 1);
  assert.match(elsewhere.stderr, /-f was not given and .*nexus-providers\.yaml does not exist/);
});

test('schema errors point at file:line:column, all of them at once', async () => {
  const path = write(
    'bad.yaml',
    `providers:
  - name: github
    auth_type: oauth3
    colour: blue
  - name: Not_Valid
agents:
  - description: no id
`,
  );
  const r = await nexus(undefined, ['validate', '-f', path]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`${path}:3:16: providers.0.auth_type: must be one of "oauth2"`));
  assert.match(r.stderr, new RegExp(`${path}:4:5: providers.0: unknown field "colour"`));
  assert.match(r.stderr, new RegExp(`${path}:5:11: providers.1.name: must match pattern`));
  assert.match(r.stderr, new RegExp(`${path}:7:5: agents.0: missing required field "agent_id"`));
  assert.match(r.stderr, /4 problems/);
});

test('a missing ${VAR} or $VAR is a validation error naming the variable and its line', async () => {
  const path = write(
    'env.yaml',
    'providers:\n  - name: github\n    client_secret: ${NOT_SET_ANYWHERE}\n    description: in $NOT_SET_EITHER\n',
  );
  const r = await nexus(undefined, ['validate', '-f', path]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`${path}:3:20: environment variable NOT_SET_ANYWHERE is not set`));
  assert.match(r.stderr, new RegExp(`${path}:4:18: environment variable NOT_SET_EITHER is not set`));
});

test('$VAR: the exact rule, the same as ${VAR}', () => {
  const env = { R: 'eu', R_X: 'long', EMPTY: '' };
  const cases: [string, string][] = [
    ['$R', 'eu'],
    ['${R}', 'eu'],
    ['$R_X', 'long'], // the longest name
    ['${R}_X', 'eu_X'],
    ['$R-1.$R', 'eu-1.eu'],
    ['x$EMPTY.y', 'x.y'], // set but empty: empty, not an error
    ['$$R', '$R'], // $$ before a name or { is one literal $
    ['$${R}', '${R}'],
    ['$$$R', '$eu'],
    ['$$$$R', '$$R'],
    ['$5 and a$ and $-x and $ R', '$5 and a$ and $-x and $ R'], // $ not before a name: as written
    ['pa$$5', 'pa$$5'],
    ['${1}', '${1}'],
    ['${R:-default}', '${R:-default}'], // no defaults: literal text
    ['$', '$'],
    ['$$', '$$'],
  ];
  for (const [written, read] of cases) {
    const m = parseManifest(`providers:\n  - name: a\n    description: '${written}'\n`, 'm.yaml', env);
    assert.equal(m.providers[0]!.profile.description, read, written);
  }
});

test('$VAR: values from the environment are never read again, keys never at all', () => {
  const tricky = 'p$ss$$w0rd${R}$R'; // a secret full of $
  const m = parseManifest(
    `providers:\n  - name: a\n    client_secret: $TRICKY\n    params:\n      credential_schema:\n        $schema: x\n        $ref: '#/$$defs/key'\n`,
    'm.yaml',
    { TRICKY: tricky, R: 'eu' },
  );
  assert.deepEqual(m.providers[0]!.secret, { kind: 'env', vars: ['TRICKY'], value: tricky });
  assert.deepEqual(m.providers[0]!.profile.params, {
    credential_schema: { $schema: 'x', $ref: '#/$defs/key' },
  });
});

test('YAML syntax errors and duplicates carry positions too', async () => {
  const syntax = write('syntax.yaml', 'providers:\n  - name: [unclosed\n');
  const r1 = await nexus(undefined, ['validate', '-f', syntax]);
  assert.equal(r1.code, 1);
  assert.match(r1.stderr, new RegExp(`${syntax}:\\d+:\\d+: `));
  const dup = write('dup.yaml', 'providers:\n  - name: github\n    aliases: [gh]\n  - name: gh\n');
  const r2 = await nexus(undefined, ['validate', '-f', dup]);
  assert.equal(r2.code, 1);
  assert.match(
    r2.stderr,
    new RegExp(`${dup}:4:11: duplicate provider name or alias "gh" \\(also at line 3\\)`),
  );
});

test('interpolation: ${VAR} from the environment, $${ for a literal, secrets remember their source', () => {
  const m = parseManifest(
    'secret_store: {user_id: ops}\nproviders:\n  - name: a\n    description: "cost $${X} in ${REGION}"\n    client_secret: ${A_SECRET}\n  - name: b\n    client_secret: nexus-secret:b-secret\n',
    'm.yaml',
    { REGION: 'eu', A_SECRET: 's1' },
  );
  assert.equal(m.providers[0]!.profile.description, 'cost ${X} in eu');
  assert.deepEqual(m.providers[0]!.secret, { kind: 'env', vars: ['A_SECRET'], value: 's1' });
  assert.deepEqual(m.providers[1]!.secret, { kind: 'ref', name: 'b-secret' });
  assert.equal(m.secretStore?.zone, 'default');
});

test('a nexus-secret: reference needs a secret_store', async () => {
  const path = write('ref.yaml', 'providers:\n  - name: a\n    client_secret: nexus-secret:x\n');
  const r = await nexus(undefined, ['validate', '-f', path]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /:3:20: a nexus-secret: reference needs a top-level secret_store/);
});

test('completion scripts generate for bash, zsh and fish (bash is syntax-checked)', async () => {
  for (const shell of ['bash', 'zsh', 'fish']) {
    const r = await nexus(undefined, ['completion', shell]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /plan/);
    assert.match(r.stdout, /apply/);
    if (shell === 'bash') {
      const path = write('nexus.bash', r.stdout);
      const check = spawnSync('bash', ['-n', path]);
      assert.equal(check.status, 0, String(check.stderr));
      const run = spawnSync('bash', [
        '-c',
        `source ${path}; COMP_WORDS=(nexus pr); COMP_CWORD=1; _nexus; echo "\${COMPREPLY[@]}"`,
      ]);
      assert.equal(String(run.stdout).trim(), 'providers');
    }
    if (shell === 'zsh') assert.match(r.stdout, /^#compdef nexus/);
    if (shell === 'fish') assert.match(r.stdout, /complete -c nexus/);
  }
  const bad = await nexus(undefined, ['completion', 'tcsh']);
  assert.equal(bad.code, 1);
});

test('every command has --help with examples', async () => {
  const main = await nexus(undefined, ['--help']);
  assert.equal(main.code, 0);
  const commands = [...main.stdout.matchAll(/^ {2}([a-z-]+) {2,}/gm)].map((m) => m[1]!);
  assert.ok(commands.length >= 12, main.stdout);
  for (const c of commands) {
    const r = await nexus(undefined, [c, '--help']);
    assert.equal(r.code, 0, c);
    assert.match(r.stdout, /Examples\n {2}.*nexus /, c);
  }
});

test('no secret of this file appeared in any output', () => {
  // record() already fails a run that prints one: this guards that the file still runs the CLI
  // with secrets at all, so that check is not vacuous.
  assert.ok(SECRETS.size >= 4, `${SECRETS.size} secrets used`);
  assert.ok(transcript.length >= 20, `${transcript.length} outputs recorded`);
  assert.ok(
    transcript.some((t) => t.includes('valid (3 objects)')),
    'a run that read the secrets is in the transcript',
  );
  for (const text of transcript) for (const s of SECRETS) assert.ok(!text.includes(s));
});
