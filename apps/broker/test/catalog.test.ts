/**
 * The provider catalogue's data (decision 0015, issue #20): every file of catalog/providers/ is a
 * valid entry, named by its key, that expands into a profile the broker accepts; there are at least
 * a hundred; docs/catalog.md is generated from them and up to date. The broker leaves a broken entry
 * out at start (and logs it); this suite is where a broken entry fails.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import type { CatalogEntry } from '../src/modules/catalog/catalog.types.ts';
import { renderCatalogDocs } from '../src/modules/catalog/catalog-docs.ts';
import { applyTemplate, expandEntry } from '../src/modules/catalog/catalog-expand.ts';
import { catalogDir, entryValidator, loadCatalog } from '../src/modules/catalog/catalog-loader.ts';
import { normalize } from '../src/modules/providers/provider-record.ts';
import { profileInput } from '../src/modules/providers/providers.schemas.ts';
import { validateProfile } from '../src/modules/providers/providers.validate.ts';

const REPO = join(import.meta.dirname, '..', '..', '..');
const dir = join(REPO, 'catalog');
const files = readdirSync(join(dir, 'providers')).sort();
const catalog = await loadCatalog(dir);
const entries = [...catalog.entries.values()];

/** The profile a template expands into, as the broker reads a request: zod, then its stored form. */
function storedExpansion(entry: CatalogEntry) {
  const oauth = entry.auth_type === 'oauth2';
  const given = oauth
    ? { client_id: 'placeholder-client-id', client_secret: 'placeholder-client-secret' }
    : {};
  const parsed = profileInput.safeParse(applyTemplate(entry, given));
  return { parsed, oauth };
}

describe('the provider catalogue', () => {
  it('is the folder the broker reads from source', () => {
    assert.equal(catalogDir(), dir);
  });

  it('has only .yaml entries, each valid against catalog/schema/provider.schema.json, its key its file name', async () => {
    const check = await entryValidator(dir);
    const broken: string[] = [];
    for (const file of files) {
      if (!file.endsWith('.yaml')) {
        broken.push(`${file}: not a .yaml file`);
        continue;
      }
      const entry = parse(readFileSync(join(dir, 'providers', file), 'utf8'), {
        uniqueKeys: true,
      }) as unknown;
      for (const problem of check(entry, file)) broken.push(`${file}: ${problem}`);
    }
    assert.deepEqual(broken, []);
    assert.deepEqual(catalog.problems, []);
    assert.equal(catalog.entries.size, files.length);
  });

  it('expands every entry into a profile the broker accepts (placeholder client id and secret)', () => {
    const refused: string[] = [];
    for (const entry of entries) {
      const { parsed, oauth } = storedExpansion(entry);
      if (!parsed.success) {
        refused.push(
          `${entry.key}: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`,
        );
        continue;
      }
      const { profile } = normalize(parsed.data);
      const problems = validateProfile(profile, { allowLoopbackHttp: false, hasClientSecret: oauth });
      for (const p of problems) refused.push(`${entry.key}: ${p.path} ${p.message}`);
      assert.deepEqual(profile.params.template, { key: entry.key, version: entry.version });
    }
    assert.deepEqual(refused, []);
  });

  it('gives every parameter an example or default that matches its pattern and makes the URLs valid', () => {
    const wrong: string[] = [];
    for (const entry of entries) {
      const values: Record<string, string> = {};
      for (const [name, p] of Object.entries(entry.parameters ?? {})) {
        const value = p.example ?? p.default;
        if (value === undefined)
          wrong.push(`${entry.key}: parameter ${name} has neither example nor default`);
        else if (!new RegExp(p.pattern, 'u').test(value))
          wrong.push(`${entry.key}: ${name} = ${value} does not match ${p.pattern}`);
        else values[name] = value;
      }
      for (const name of Object.keys(entry.learnt ?? {})) values[name] ??= 'https://learnt.example.com';
      const expanded = expandEntry(entry);
      const params = expanded.params as Record<string, unknown>;
      const urls = [
        expanded.auth_url,
        expanded.token_url,
        expanded.user_info_endpoint,
        expanded.api_base_url,
        params.revocation_endpoint,
      ].filter((u): u is string => typeof u === 'string');
      for (const url of urls) {
        const filled = url.replace(/\{([a-z][a-z0-9_]*)\}/g, (m, name: string) => values[name] ?? m);
        if (/[{}]/.test(filled))
          wrong.push(`${entry.key}: ${url} names a placeholder no parameter or learnt value gives`);
        else if (!URL.canParse(filled) || new URL(filled).protocol !== 'https:')
          wrong.push(`${entry.key}: ${filled} is not an https URL`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('expands per decision 0015: endpoints, quirks, parameters and the template record', () => {
    const google = catalog.entries.get('google');
    assert.ok(google, 'the google entry');
    const profile = expandEntry(google);
    assert.equal(profile.name, 'google');
    assert.equal(profile.auth_url, google.oauth2?.authorization_url);
    assert.equal(profile.auth_header, google.oauth2?.token_auth_method);
    assert.deepEqual(profile.scopes, google.oauth2?.default_scopes);
    const params = profile.params as Record<string, unknown>;
    assert.equal(params.access_type, 'offline');
    assert.equal(params.prompt, 'consent');
    assert.equal(params.revocation_endpoint, google.oauth2?.revocation_url);
    assert.equal(params.docs_url, google.docs);
    assert.equal(params.pkce, undefined, 'PKCE is the default: not written');
    assert.equal(profile.category, google.categories[0]);
    const zendesk = catalog.entries.get('zendesk');
    assert.ok(zendesk, 'the zendesk entry');
    assert.deepEqual(
      (expandEntry(zendesk).params as Record<string, unknown>).connection_parameters,
      zendesk.parameters,
    );
    // Explicit fields win; params merge key by key; the template record cannot be overridden.
    const merged = applyTemplate(google, {
      template: 'google',
      name: 'google-work',
      scopes: ['email'],
      params: { prompt: 'select_account', template: { key: 'x', version: 9 } },
    });
    assert.equal(merged.name, 'google-work');
    assert.deepEqual(merged.scopes, ['email']);
    assert.equal('template' in merged, false);
    const mergedParams = merged.params as Record<string, unknown>;
    assert.equal(mergedParams.prompt, 'select_account');
    assert.equal(mergedParams.access_type, 'offline');
    assert.deepEqual(mergedParams.template, { key: 'google', version: google.version });
  });

  it('has at least 100 entries (issue #20)', () => {
    assert.ok(catalog.entries.size >= 100, `${catalog.entries.size} entries`);
  });

  it('leaves a broken entry out, with its reason, instead of failing', async () => {
    const copy = mkdtempSync(join(tmpdir(), 'nexus-catalog-'));
    try {
      mkdirSync(join(copy, 'providers'));
      mkdirSync(join(copy, 'schema'));
      writeFileSync(
        join(copy, 'schema', 'provider.schema.json'),
        readFileSync(join(dir, 'schema', 'provider.schema.json')),
      );
      writeFileSync(
        join(copy, 'providers', 'google.yaml'),
        readFileSync(join(dir, 'providers', 'google.yaml')),
      );
      writeFileSync(
        join(copy, 'providers', 'renamed.yaml'),
        readFileSync(join(dir, 'providers', 'google.yaml')),
      );
      const google = readFileSync(join(dir, 'providers', 'google.yaml'), 'utf8');
      writeFileSync(
        join(copy, 'providers', 'bad.yaml'),
        google.replace(/^key: google$/m, 'key: bad').replace(/^version: \d+$/m, 'version: 0'),
      );
      writeFileSync(join(copy, 'providers', 'broken.yaml'), 'key: [unclosed\n');
      const loaded = await loadCatalog(copy);
      assert.deepEqual([...loaded.entries.keys()], ['google']);
      assert.deepEqual(
        loaded.problems.map((p) => p.file),
        ['bad.yaml', 'broken.yaml', 'renamed.yaml'],
      );
      assert.match(loaded.problems[0]?.message ?? '', /version/);
      assert.match(loaded.problems[2]?.message ?? '', /not the file name/);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it('is read from beside the bundle when the repository is not there (the Docker image)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'nexus-catalog-bundle-'));
    try {
      // As deep as apps/broker/dist/bundle/nexus.mjs, with the copy scripts/build.mjs makes beside it.
      const bundleDir = join(out, 'apps', 'broker', 'dist', 'bundle');
      const { build } = await import('esbuild');
      await build({
        stdin: {
          contents: "export { catalogDir, loadCatalog } from './catalog-loader.ts';",
          resolveDir: join(REPO, 'apps', 'broker', 'src', 'modules', 'catalog'),
          loader: 'ts',
        },
        outfile: join(bundleDir, 'nexus.mjs'),
        bundle: true,
        platform: 'node',
        format: 'esm',
        // As scripts/build.mjs: CommonJS packages (yaml, ajv) call require() for Node's built-ins.
        banner: {
          js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        },
        logLevel: 'silent',
      });
      cpSync(dir, join(bundleDir, 'catalog'), { recursive: true });
      const bundled = (await import(
        join(bundleDir, 'nexus.mjs')
      )) as typeof import('../src/modules/catalog/catalog-loader.ts');
      assert.equal(bundled.catalogDir(), join(bundleDir, 'catalog'));
      const loaded = await bundled.loadCatalog();
      assert.deepEqual(loaded.problems, []);
      assert.deepEqual([...loaded.entries.keys()], [...catalog.entries.keys()]);
      const script = readFileSync(join(REPO, 'apps', 'broker', 'scripts', 'build.mjs'), 'utf8');
      assert.match(script, /cpSync\(join\(broker, '\.\.', '\.\.', 'catalog'\), join\(out, 'catalog'\)/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('is documented in docs/catalog.md (run `npm run docs:catalog` after changing an entry)', () => {
    const page = readFileSync(join(REPO, 'docs', 'catalog.md'), 'utf8');
    assert.equal(page, renderCatalogDocs(entries));
  });
});
