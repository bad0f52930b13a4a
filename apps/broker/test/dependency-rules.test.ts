/**
 * The broker's dependency direction, checked over its import graph (import-graph.ts): routes →
 * services → stores → db, with the leaf layers (auth, config, crypto, db, egress, errors, vault)
 * at the bottom, and one composition root (container.ts) that only entry points see.
 *
 * File kinds are read from names: `modules/<m>/*.routes.ts` routes, `*.service.ts` services,
 * `*.store.ts` and `*-store.ts` stores, `*.errors.ts` error catalogues.
 *
 * Modules that own no table (TABLELESS_MODULES: `keys/`) are also checked to name none in a query.
 *
 * ALLOWED lists the violations that exist today, each with the step that removes it. It can only
 * shrink: a new violation fails, and so does an entry that no longer matches one (delete it).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type ImportEdge, importGraph, importsOf, SRC, sourceFiles } from './import-graph.ts';

/** Layers that know nothing of modules, HTTP, gRPC, the CLI or the container. */
const LEAF_LAYERS = new Set([
  'auth',
  'config',
  'crypto',
  'db',
  'egress',
  'errors',
  'vault',
  'version.ts',
  'durable-file.ts',
]);
/** Where a process starts: only these see the container, app.ts and the gRPC server. */
const ENTRY_LAYERS = new Set(['http', 'grpc', 'cli', 'app.ts', 'container.ts']);

const top = (file: string) => file.split('/')[0] as string;
const moduleOf = (file: string) => (file.startsWith('modules/') ? file.split('/')[1] : undefined);
const inModules = (file: string) => moduleOf(file) !== undefined;
const isRoutes = (file: string) => inModules(file) && file.endsWith('.routes.ts');
const isService = (file: string) => inModules(file) && file.endsWith('.service.ts');
const isStore = (file: string) => inModules(file) && /[.-]store\.ts$/.test(file);
/** An error catalogue only defines codes (its own imports are checked: errors/ and catalogues only). */
const isCatalogue = (file: string) => file.endsWith('.errors.ts');
const isEntryPoint = (file: string) => top(file) === 'cli' || file === 'app.ts' || file === 'grpc/server.ts';

interface Rule {
  readonly why: string;
  readonly forbids: (edge: ImportEdge) => boolean;
}

const RULES: Record<string, Rule> = {
  'container.ts is imported only by entry points': {
    why: 'one composition root: modules take what they need as narrow parameters (cli/, app.ts, grpc/server.ts build from it)',
    forbids: (e) => e.to === 'container.ts' && !isEntryPoint(e.from),
  },
  'the composition parts (*-parts.ts) are imported only by container.ts': {
    why: 'they build a group of services for container.ts (which builds every store): part of the one composition root',
    forbids: (e) => /^[a-z-]+-parts\.ts$/.test(e.to) && e.from !== 'container.ts',
  },
  'leaf layers never import modules, HTTP, gRPC, the CLI or the container': {
    why: 'crypto/, egress/, vault/, auth/, config/, db/ and errors/ are at the bottom; they may name error catalogues only',
    forbids: (e) =>
      LEAF_LAYERS.has(top(e.from)) &&
      (ENTRY_LAYERS.has(top(e.to)) || (inModules(e.to) && !isCatalogue(e.to))),
  },
  'error catalogues import only errors/ and other catalogues': {
    why: 'a catalogue is a leaf that every layer may import, so it must not pull anything in',
    forbids: (e) => isCatalogue(e.from) && top(e.to) !== 'errors' && !isCatalogue(e.to),
  },
  'stores never import services, routes, HTTP or entry points': {
    why: 'routes → services → stores → db',
    forbids: (e) => isStore(e.from) && (isService(e.to) || isRoutes(e.to) || ENTRY_LAYERS.has(top(e.to))),
  },
  'module code other than routes never imports http/': {
    why: 'services and stores know no Fastify request or reply; routes adapt HTTP to them',
    forbids: (e) => inModules(e.from) && !isRoutes(e.from) && top(e.to) === 'http',
  },
  'modules never import gRPC, the CLI, app.ts or the container': {
    why: 'those are entry points, above every module',
    forbids: (e) => inModules(e.from) && ['grpc', 'cli', 'app.ts', 'container.ts'].includes(top(e.to)),
  },
  'routes files are imported only by app.ts': {
    why: 'app.ts registers them; services, http/ helpers and gRPC call services, never a route file',
    forbids: (e) => isRoutes(e.to) && e.from !== 'app.ts',
  },
  "no one imports another module's store": {
    why: "a module's rows are reached through its service (container.ts builds every store)",
    forbids: (e) => isStore(e.to) && e.from !== 'container.ts' && moduleOf(e.from) !== moduleOf(e.to),
  },
  'app.ts, grpc/ and cli/ are imported only by the CLI': {
    why: '`nexus serve` starts the servers; nothing below it reaches back up',
    forbids: (e) =>
      (e.to === 'app.ts' || top(e.to) === 'cli' || top(e.to) === 'grpc') &&
      top(e.from) !== 'cli' &&
      top(e.from) !== top(e.to),
  },
};

/**
 * Tables a file names in a query: Kysely's `selectFrom('t')`, `insertInto`, `updateTable`,
 * `deleteFrom`, `replaceInto`, `mergeInto` and `sql.table('t')`, with a literal name.
 */
function tablesQueried(text: string): string[] {
  const named =
    /\b(?:selectFrom|insertInto|updateTable|deleteFrom|replaceInto|mergeInto|sql\.table)\(\s*(['"`])([A-Za-z_]+)\1/g;
  return [...text.matchAll(named)].map((m) => m[2] as string);
}

/**
 * Modules that own no table and must name none: they reach other modules' rows through what those
 * modules hand out. `keys/` (rewrap, key reports) uses connections/maintenance.ts and
 * user-secrets/maintenance.ts, and walks the sealed columns through its ENCRYPTED_COLUMNS registry
 * (`sql.table(col.table)`, never a literal name).
 */
const TABLELESS_MODULES = new Set(['keys']);

/** `from -> to` pairs that break a rule today. Remove an entry when its import goes; never add one. */
const ALLOWED: Record<string, readonly string[]> = {};

const pair = (e: ImportEdge) => `${e.from} -> ${e.to}`;

/** The edges that break `rule`, minus the allowed ones. */
function violations(edges: readonly ImportEdge[], name: string): ImportEdge[] {
  const rule = RULES[name] as Rule;
  const allowed = new Set(ALLOWED[name] ?? []);
  return edges.filter((e) => rule.forbids(e) && !allowed.has(pair(e)));
}

/** Every module file reachable from `start`, following imports. */
function reachableModuleCode(edges: readonly ImportEdge[], start: string): string[] {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const seen = new Set([start]);
  const queue = [start];
  for (let file = queue.shift(); file !== undefined; file = queue.shift())
    for (const to of next.get(file) ?? [])
      if (!seen.has(to)) {
        seen.add(to);
        queue.push(to);
      }
  return [...seen].filter(inModules);
}

const edges = importGraph();
const describeEdges = (found: readonly ImportEdge[]) =>
  found.map((e) => `  ${e.from}:${e.line} imports ${e.to}`).join('\n');

describe('dependency rules of apps/broker/src', () => {
  it('reads the import graph (a sanity check that the parser finds imports at all)', () => {
    assert.ok(edges.length > 500, `only ${edges.length} imports found`);
    assert.ok(edges.some((e) => e.from === 'app.ts' && e.to === 'container.ts'));
    assert.ok(edges.some((e) => e.from === 'crypto/transit.ts' && e.to === 'vault/vault.http.ts'));
  });

  for (const [name, rule] of Object.entries(RULES))
    it(name, () => {
      const found = violations(edges, name);
      assert.deepEqual(found, [], `${name} (${rule.why}):\n${describeEdges(found)}`);
    });

  it('crypto/, egress/ and the other leaf layers reach no module code, even through another file', () => {
    const leaks = edges
      .map((e) => e.from)
      .filter((file, i, all) => LEAF_LAYERS.has(top(file)) && all.indexOf(file) === i)
      .flatMap((file) =>
        reachableModuleCode(edges, file)
          .filter((m) => !isCatalogue(m))
          .map((m) => `${file} → ${m}`),
      );
    assert.deepEqual(leaks, []);
  });

  it("modules/keys names no table in a query (another module's rows come through its maintenance interface)", () => {
    const found = sourceFiles()
      .filter((file) => TABLELESS_MODULES.has(moduleOf(file) ?? ''))
      .flatMap((file) =>
        tablesQueried(readFileSync(join(SRC, file), 'utf8')).map((table) => `${file} queries ${table}`),
      );
    assert.deepEqual(found, []);
  });

  it('the allow-list only shrinks: every entry is still a violation of its rule', () => {
    const stale = Object.entries(ALLOWED).flatMap(([name, entries]) =>
      entries
        .filter((entry) => !edges.some((e) => pair(e) === entry && RULES[name]?.forbids(e)))
        .map((entry) => `${name}: ${entry}`),
    );
    assert.deepEqual(stale, [], 'these imports are gone: delete them from ALLOWED');
  });
});

describe('the dependency checker', () => {
  const check = (file: string, text: string) =>
    Object.keys(RULES).filter((name) => violations(importsOf(file, text), name).length > 0);

  it('flags crypto importing a module, in every import form', () => {
    for (const text of [
      "import { secretBackend } from '../modules/secrets/secret-backend.ts';",
      "import type {\n  SecretBackend,\n} from '../modules/secrets/secret-backend.ts';",
      "export { secretBackend } from '../modules/secrets/secret-backend.ts';",
      "import '../modules/secrets/secret-backend.ts';",
      "const m = await import('../modules/secrets/secret-backend.ts');",
    ])
      assert.deepEqual(check('crypto/transit.ts', text), [
        'leaf layers never import modules, HTTP, gRPC, the CLI or the container',
      ]);
  });

  it('flags a module importing the container, another module store or a routes file', () => {
    assert.deepEqual(
      check('modules/worker/runner.ts', "import type { Container } from '../../container.ts';"),
      [
        'container.ts is imported only by entry points',
        'modules never import gRPC, the CLI, app.ts or the container',
      ],
    );
    assert.deepEqual(
      check('modules/proxy/proxy.ts', "import { x } from '../connections/connections.store.ts';"),
      ["no one imports another module's store"],
    );
    assert.deepEqual(
      check(
        'modules/keys/key-report.ts',
        "import { versionPath } from '../user-secrets/user-secrets.store.ts';",
      ),
      ["no one imports another module's store"],
    );
    assert.deepEqual(check('http/auth.ts', "import { x } from '../modules/agents/agents.routes.ts';"), [
      'routes files are imported only by app.ts',
    ]);
    assert.deepEqual(check('app.ts', "import { createConsentParts } from './consent-parts.ts';"), [
      'the composition parts (*-parts.ts) are imported only by container.ts',
    ]);
  });

  it('finds a table named in a query, on one line or several, and not one named through a variable', () => {
    assert.deepEqual(
      tablesQueried(
        "const rows = await db.kysely\n  .selectFrom('user_secret_versions')\n  .select(['version'])",
      ),
      ['user_secret_versions'],
    );
    assert.deepEqual(tablesQueried('await k.updateTable(\n  "connections"\n).set(s)'), ['connections']);
    assert.deepEqual(tablesQueried("const t = sql.table('webhooks');"), ['webhooks']);
    assert.deepEqual(tablesQueried('const table = sql.table(col.table);'), []);
    assert.deepEqual(tablesQueried('// reads user_secret_versions through user-secrets/maintenance.ts'), []);
  });

  it('accepts the directions that are allowed, and ignores imports quoted in comments', () => {
    assert.deepEqual(
      check('cli/commands/doctor.ts', "import { buildContainer } from '../../container.ts';"),
      [],
    );
    assert.deepEqual(check('modules/proxy/proxy.routes.ts', "import { x } from './proxy.ts';"), []);
    assert.deepEqual(
      check('vault/vault.http.ts', "import { e } from '../modules/secrets/secrets.errors.ts';"),
      [],
    );
    assert.deepEqual(check('crypto/transit.ts', "// import { x } from '../modules/a/a.service.ts';"), []);
    assert.deepEqual(
      check('crypto/transit.ts', "/**\n * import { x } from '../modules/a/a.service.ts';\n */"),
      [],
    );
  });
});
