/**
 * docs/providers.md is executable (issue #24): every worked example there is registered on a real
 * broker, so a validation rule that changes under the documentation fails here, not for a reader.
 *
 * The examples are fenced blocks preceded by `<!-- providers-doc: NAME PART -->`, PART being
 * `body` (POST /providers), `manifest` (the nexus.yaml form, which must give the same profile),
 * `capture` (what the user types into the form), `token` (what GET /v1/token must answer, a
 * subset) and `request` (what the TypeScript SDK's strategy code sends, at a fixed clock).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { normalizeProfile, parseManifest } from '../../../packages/cli/src/manifest.ts';
import { applyStrategy } from '../../../packages/sdk/src/strategies.ts';
import type { Strategy } from '../../../packages/sdk/src/types.ts';
import { capture, startCapture } from './capture-helpers.ts';
import { json, startBroker, type TestBroker } from './harness.ts';

const DOC = new URL('../../../docs/providers.md', import.meta.url);
const PARTS = ['body', 'manifest', 'capture', 'token', 'request'] as const;
type Part = (typeof PARTS)[number];
/** The signing time of the doc's SigV4 request. */
const SIGNED_AT = Date.parse('2026-12-06T12:00:00Z');

/** The marked blocks of the document, by example name, in document order. */
function examples(text: string): Map<string, Partial<Record<Part, string>>> {
  const found = new Map<string, Partial<Record<Part, string>>>();
  const marker = /<!-- providers-doc: ([a-z0-9-]+) ([a-z]+) -->\s*```[a-z]*\n([\s\S]*?)\n```/g;
  for (const [, name, part, block] of text.matchAll(marker)) {
    assert.ok(PARTS.includes(part as Part), `providers.md: unknown part "${part}" of ${name}`);
    const parts = found.get(name!) ?? {};
    assert.equal(parts[part as Part], undefined, `providers.md: two "${part}" blocks for ${name}`);
    parts[part as Part] = block;
    found.set(name!, parts);
  }
  return found;
}

/** `METHOD URL`, header lines, then after a blank line the body. */
function parseRequest(block: string) {
  const [head, body = ''] = block.split(/\n\n/, 2) as [string, string?];
  const [start, ...lines] = head.split('\n');
  const [method, url] = start!.split(' ') as [string, string];
  const headers = Object.fromEntries(
    lines.map((line) => {
      const at = line.indexOf(': ');
      return [line.slice(0, at), line.slice(at + 2)];
    }),
  );
  return { method, url: new URL(url), headers, body };
}

const text = readFileSync(DOC, 'utf8');
const all = examples(text);

describe('docs/providers.md', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(() => broker.close());

  it('has the worked examples the issue asks for, each complete', () => {
    assert.deepEqual([...all.keys()], ['openai', 'datadog', 'jira', 'payments', 'aws-s3']);
    for (const [name, parts] of all) {
      for (const part of PARTS) assert.ok(parts[part] !== undefined, `${name}: no ${part} block`);
    }
  });

  for (const [name, parts] of all) {
    it(`${name}: registers, captures, and answers the documented strategy and request`, async () => {
      const body = JSON.parse(parts.body!) as { profile: Record<string, unknown> };
      assert.equal(body.profile.name, name, 'the example is named after its provider');
      const created = await broker.request({ method: 'POST', url: '/providers', payload: body });
      assert.equal(created.statusCode, 201, created.body);

      // The manifest form is the same provider (the CLI's own reader, no environment needed).
      const manifest = parseManifest(parts.manifest!, `providers.md#${name}`, {});
      assert.equal(manifest.providers.length, 1);
      assert.deepEqual(manifest.providers[0]!.profile, normalizeProfile(body.profile));

      const flow = await startCapture(broker, name, `doc-user-${name}`);
      const credentials = JSON.parse(parts.capture!) as Record<string, string>;
      const captured = await capture(broker, flow.state, credentials);
      assert.equal(captured.statusCode, 200, captured.body);

      const token = json<{ strategy: Strategy; credentials: Record<string, string> }>(
        await broker.request({ method: 'GET', url: `/v1/token/${flow.connection_id}` }),
      );
      const documented = JSON.parse(parts.token!) as Record<string, unknown>;
      for (const [key, value] of Object.entries(documented))
        assert.deepEqual((token as unknown as Record<string, unknown>)[key], value, `/v1/token .${key}`);

      const shown = parseRequest(parts.request!);
      const sent = await applyStrategy(
        token.strategy,
        token.credentials,
        {
          url: shown.url,
          method: shown.method,
          headers: {},
          body: shown.body === '' ? undefined : new TextEncoder().encode(shown.body),
        },
        { now: () => SIGNED_AT },
      );
      assert.deepEqual(sent.url.href, shown.url.href, 'the URL the bridge sends');
      assert.deepEqual(sent.headers, shown.headers, 'the headers the bridge sets');
    });
  }
});
