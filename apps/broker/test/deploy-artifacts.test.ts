/**
 * The container image without a Docker engine (issue #24): what the Dockerfile copies exists, the
 * final stage runs as a non-root user and bakes in no secret, and its ENTRYPOINT, run with this
 * Node 24 from the same relative layout against an empty data directory, serves /health and
 * /ready and passes the image's own HEALTHCHECK. scripts/check-deploy.sh adds hadolint, the
 * compose file and the Helm chart.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { baseEnv, envKeys, fetchWithin, freePort, newKeyBase64, REPO_ROOT } from './cli-helpers.ts';

interface Instruction {
  readonly op: string;
  readonly args: string;
}
interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

/** Instructions per stage; continuation lines joined, comments and the parser directive dropped. */
function parseDockerfile(text: string): Stage[] {
  const joined = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const stages: Stage[] = [];
  for (const line of joined.split('\n')) {
    const match = line.trim().match(/^([A-Za-z]+)\s+(.*)$/);
    if (!match) continue;
    const op = match[1]!.toUpperCase();
    const args = match[2]!.trim();
    if (op === 'FROM') {
      const [from, , name] = args.split(/\s+/);
      stages.push({ from: from!, name, instructions: [] });
    } else if (stages.length > 0) stages.at(-1)!.instructions.push({ op, args });
  }
  return stages;
}

/** `--flag=value` options and the paths of a COPY (the last one is the destination). */
function copyParts(args: string): { flags: Record<string, string>; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  const flags: Record<string, string> = {};
  while (words[0]?.startsWith('--')) {
    const [key, value = ''] = words.shift()!.slice(2).split('=');
    flags[key!] = value;
  }
  const dest = words.pop()!;
  return { flags, sources: words, dest };
}

/** ENV of a stage, in both of its forms (`A=1 B=2` and the legacy `A 1`). */
function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { op, args } of stage.instructions) {
    if (op !== 'ENV') continue;
    if (!args.includes('=')) {
      const [key, ...value] = args.split(/\s+/);
      env[key!] = value.join(' ');
    } else for (const [, key, value] of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S*)/g)) env[key!] = value!;
  }
  return env;
}

const execForm = (stage: Stage, op: string): string[] => {
  const found = stage.instructions.findLast((i) => i.op === op);
  assert.ok(found, `the final stage has no ${op}`);
  return JSON.parse(found.args) as string[];
};

/** .dockerignore's wildcards as regular-expression pieces. */
const GLOB: Record<string, string> = { '**/': '(?:.*/)?', '**': '.*', '*': '[^/]*' };

/**
 * Whether .dockerignore keeps `path` out of the build context: Docker's rules in short (`*` within
 * a segment, `**` across segments, a pattern also covers what lies below it, the last match wins,
 * `!` re-includes).
 */
function dockerIgnores(rules: string, path: string): boolean {
  let ignored = false;
  for (const raw of rules.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    const glob = (negate ? line.slice(1) : line).replace(/^\/+|\/+$/g, '');
    const pattern = glob.replace(/\*\*\/|\*\*|\*|[.+?^${}()|[\]\\]/g, (t) => GLOB[t] ?? `\\${t}`);
    if (new RegExp(`^${pattern}(/.*)?$`).test(path)) ignored = !negate;
  }
  return ignored;
}

/** Secret variables, as docs/configuration.md (generated from the config schema) marks them. */
function secretVariables(): string[] {
  const doc = readFileSync(join(REPO_ROOT, 'docs/configuration.md'), 'utf8');
  return [...doc.matchAll(/^\| `([A-Z0-9_]+)` \(\*\*secret\*\*\)/gm)].map((m) => m[1]!);
}

const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const stages = parseDockerfile(dockerfile);
const final = stages.at(-1)!;
// The image's WORKDIR is the repository root, so an absolute /app path maps onto REPO_ROOT.
const inRepo = (path: string) => join(REPO_ROOT, path.replace(/^\/app\//, ''));

describe('Dockerfile', () => {
  it('is multi-stage on Node 24', () => {
    assert.ok(stages.length >= 2, 'a build stage and a runtime stage');
    const nodeImage = dockerfile.match(/^ARG NODE_IMAGE=(\S+)$/m)?.[1];
    assert.match(nodeImage ?? '', /^node:24[-.]/);
    for (const stage of stages)
      assert.match(stage.from, /^\$\{NODE_IMAGE\}$/, 'every stage on the same Node image');
  });

  it('copies only paths that exist and that .dockerignore lets through', () => {
    const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8');
    // What must never reach a build context: keys, data directories, env files, local installs.
    for (const local of [
      '.nexus/keys.json',
      'apps/broker/.nexus/nexus.db',
      'node_modules/x',
      'deploy/compose/nexus.env',
      '.env',
    ])
      assert.ok(dockerIgnores(ignored, local), `.dockerignore lets ${local} through`);
    for (const stage of stages) {
      for (const { op, args } of stage.instructions) {
        if (op !== 'COPY') continue;
        const { flags, sources } = copyParts(args);
        for (const source of sources) {
          if (flags.from === undefined) {
            assert.ok(existsSync(join(REPO_ROOT, source)), `COPY ${source}: no such path in the repository`);
            assert.ok(!dockerIgnores(ignored, source), `COPY ${source}: excluded by .dockerignore`);
          } else {
            // A path of another stage: that stage's WORKDIR is the repository root there too.
            const from = stages.find((s) => s.name === flags.from);
            assert.ok(from, `COPY --from=${flags.from}: no such stage`);
            const fromDir = from.instructions.findLast((i) => i.op === 'WORKDIR')?.args ?? '/';
            assert.ok(
              source.startsWith(`${fromDir}/`),
              `COPY --from=${flags.from} ${source} is outside ${fromDir}`,
            );
            const local = join(REPO_ROOT, source.slice(fromDir.length + 1));
            assert.ok(
              existsSync(local),
              `COPY --from=${flags.from} ${source}: ${local} does not exist (npm ci builds it)`,
            );
          }
        }
      }
    }
  });

  it('gives each `npm ci` the manifest of every workspace (npm ci refuses a partial tree)', () => {
    const manifests = ['apps', 'packages'].flatMap((dir) =>
      readdirSync(join(REPO_ROOT, dir))
        .map((name) => `${dir}/${name}/package.json`)
        .filter((path) => existsSync(join(REPO_ROOT, path))),
    );
    for (const stage of stages.filter((s) => s.instructions.some((i) => i.args.includes('npm ci')))) {
      const copied = stage.instructions
        .filter((i) => i.op === 'COPY' && !i.args.includes('--from'))
        .flatMap((i) => copyParts(i.args).sources);
      for (const manifest of ['package.json', 'package-lock.json', ...manifests])
        assert.ok(copied.includes(manifest), `stage ${stage.name} runs npm ci without ${manifest}`);
    }
  });

  it('runs as a non-root user, by number, and bakes in no secret', () => {
    const user = final.instructions.findLast((i) => i.op === 'USER')?.args;
    assert.ok(user, 'the final stage sets USER');
    assert.match(
      user,
      /^[1-9][0-9]*(:[1-9][0-9]*)?$/,
      'a numeric non-root user (runAsNonRoot can verify it)',
    );
    const baked = stages.flatMap((s) => Object.keys(envOf(s)));
    for (const stage of stages)
      for (const { op, args } of stage.instructions) if (op === 'ARG') baked.push(args.split('=')[0]!);
    const secrets = secretVariables();
    assert.ok(secrets.includes('ENCRYPTION_KEY') && secrets.includes('DATABASE_URL'), 'secret list parsed');
    for (const name of baked)
      assert.ok(!secrets.includes(name), `${name} is secret and set in the Dockerfile`);
  });

  it('builds the bundle as ASCII only (a file with one other character stays in memory at two bytes each)', () => {
    const dir = join(REPO_ROOT, 'apps/broker/dist/bundle');
    const files = readdirSync(dir).filter((name) => name.endsWith('.mjs'));
    assert.ok(files.length > 1, 'the bundle is missing: `npm ci` (or `npm run build`) builds it');
    for (const name of files) {
      const text = readFileSync(join(dir, name), 'utf8');
      const at = text.search(/[\u0080-\uffff]/);
      assert.equal(at, -1, `${name} has ${JSON.stringify(text.slice(at - 40, at + 10))}`);
    }
  });

  describe('the entrypoint, run as the image runs it', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'nexus-image-'));
    let broker: ChildProcess | undefined;
    after(() => {
      broker?.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('serves /health and /ready, and the HEALTHCHECK passes', async () => {
      const bundle = join(REPO_ROOT, 'apps/broker/dist/bundle/nexus.mjs');
      assert.ok(existsSync(bundle), 'the bundle is missing: `npm ci` (or `npm run build`) builds it');
      const entrypoint = execForm(final, 'ENTRYPOINT');
      const cmd = execForm(final, 'CMD');
      assert.equal(entrypoint[0], 'node');
      assert.deepEqual(cmd, ['serve']);
      const port = await freePort();
      // The image's ENV, then what an operator supplies (keys, the public URL); the data directory
      // is empty, as a fresh volume is. Loopback instead of 0.0.0.0 keeps the test off the network.
      const env: Record<string, string> = {
        ...baseEnv(),
        ...envOf(final),
        ...envKeys(),
        USER_SECRETS_KEY: newKeyBase64(),
        BASE_URL: 'https://nexus.example.com',
        NEXUS_DATA_DIR: dataDir,
        HOST: '127.0.0.1',
        PORT: String(port),
      };
      assert.equal(env.NEXUS_ENV, 'production');
      let output = '';
      broker = spawn(process.execPath, [...entrypoint.slice(1).map(inRepo), ...cmd], { cwd: REPO_ROOT, env });
      broker.stdout?.on('data', (chunk: Buffer) => {
        output += chunk;
      });
      broker.stderr?.on('data', (chunk: Buffer) => {
        output += chunk;
      });
      const deadline = Date.now() + 20_000;
      while (!output.includes('"msg":"nexus ready"')) {
        assert.ok(broker.exitCode === null, `nexus exited (${broker.exitCode}):\n${output}`);
        assert.ok(Date.now() < deadline, `not ready in 20 s:\n${output}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const health = await fetchWithin(`http://127.0.0.1:${port}/health`);
      assert.equal(health.status, 200);
      const ready = await fetchWithin(`http://127.0.0.1:${port}/ready`);
      assert.equal(ready.status, 200, await ready.text());
      // The console's files are found from the bundle's files too (chunks sit beside nexus.mjs).
      const script = await fetchWithin(`http://127.0.0.1:${port}/console/app.js`);
      assert.equal(script.status, 200, await script.text());

      const check = healthcheckCommand(final);
      const result = spawnSync(process.execPath, check.slice(1).map(inRepo), {
        cwd: REPO_ROOT,
        env,
        timeout: 10_000,
      });
      assert.equal(result.status, 0, `HEALTHCHECK failed: ${result.stderr}`);

      broker.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => broker!.once('exit', (c) => r(c)));
      assert.equal(code, 0, output);
      const down = spawnSync(process.execPath, check.slice(1).map(inRepo), {
        cwd: REPO_ROOT,
        env,
        timeout: 10_000,
      });
      assert.equal(down.status, 1, 'the HEALTHCHECK fails once the broker is gone');
    });

    it('loads the AWS and GCP secret backends from the bundle (they are not loaded otherwise)', () => {
      // The backends are imported on first use; from the bundle a `require` of their source path
      // failed with "Cannot find module". Unreachable endpoints: the start-up check must get as
      // far as calling them.
      const entrypoint = execForm(final, 'ENTRYPOINT');
      const serve = (backend: Record<string, string>) => {
        const dir = mkdtempSync(join(tmpdir(), 'nexus-image-backend-'));
        try {
          const run = spawnSync(process.execPath, [...entrypoint.slice(1).map(inRepo), 'serve'], {
            cwd: REPO_ROOT,
            env: {
              ...baseEnv(),
              ...envKeys(),
              NEXUS_DATA_DIR: dir,
              HOST: '127.0.0.1',
              PORT: '0',
              ...backend,
            },
            encoding: 'utf8',
            timeout: 60_000,
          });
          return { status: run.status, output: `${run.stdout}${run.stderr}` };
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      };
      const aws = serve({
        SECRET_BACKEND: 'aws-secrets-manager',
        AWS_REGION: 'us-east-1',
        AWS_ENDPOINT_URL_SECRETS_MANAGER: 'http://127.0.0.1:9',
        AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'example-secret',
      });
      assert.doesNotMatch(aws.output, /Cannot find module/, aws.output);
      assert.match(
        aws.output,
        /Secret backend aws-secrets-manager \(SECRET_BACKEND\) failed its start-up check/,
      );
      assert.notEqual(aws.status, 0);
      // Without Google credentials: the start-up check's message, not a crash on an unhandled
      // rejection from inside Google's client (which it was).
      const gcp = serve({
        SECRET_BACKEND: 'gcp-secret-manager',
        GCP_PROJECT_ID: 'nexus-test',
        GCP_SECRET_MANAGER_ENDPOINT: '127.0.0.1:9',
      });
      assert.doesNotMatch(gcp.output, /Cannot find module|Node\.js v\d/, gcp.output);
      assert.match(
        gcp.output,
        /Secret backend gcp-secret-manager \(SECRET_BACKEND\) failed its start-up check/,
      );
      assert.notEqual(gcp.status, 0);
    });
  });
});

/** The exec form after `HEALTHCHECK [options] CMD`. */
function healthcheckCommand(stage: Stage): string[] {
  const found = stage.instructions.findLast((i) => i.op === 'HEALTHCHECK');
  assert.ok(found, 'the final stage has a HEALTHCHECK');
  const json = found.args.slice(found.args.indexOf('CMD') + 3).trim();
  const command = JSON.parse(json) as string[];
  assert.equal(command[0], 'node');
  return command;
}
