/**
 * Issue #17: the gRPC field numbers are the wire, and they are pinned.
 *
 * - The published `proto/nexus/v1/nexus.proto` carries the original gateway's four calls
 *   wire-identically: every number, type and HTTP route of `fixtures/original-nexus.proto` (written
 *   from the v1 contract, not from `proto/`) is the same in the published file.
 * - `proto/wire.lock.json` records every message's numbers and every call; the published file may
 *   only add to it. After an addition, record it with
 *   `NEXUS_UPDATE_WIRE_LOCK=1 npx node --test apps/broker/test/grpc-wire.test.ts`, which refuses
 *   to write a lock over a breaking change.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ORIGINAL, PUBLISHED } from './grpc-client.ts';
import { compareWire, describeWire, restrictWire, type Wire } from './grpc-wire.ts';

const LOCK = fileURLToPath(new URL('../../../proto/wire.lock.json', import.meta.url));
const UPDATE = process.env.NEXUS_UPDATE_WIRE_LOCK === '1';
const RECORD = 'NEXUS_UPDATE_WIRE_LOCK=1 npx node --test apps/broker/test/grpc-wire.test.ts';

const COMMENT =
  'The wire of proto/nexus: field number -> meaning, per message, and every call. Numbers may only be ' +
  `added: a number never changes meaning or comes back after \`reserved\`. Checked by ` +
  `apps/broker/test/grpc-wire.test.ts; after adding fields or calls, record them with ${RECORD}.`;

/** The lock as JSON, formatted as Biome formats it (short number lists on one line). */
function lockText(wire: Wire): string {
  const text = JSON.stringify({ $comment: COMMENT, ...wire }, null, 2);
  return `${text.replace(/\[\s+([\d,\s]+?)\s+\]/g, (_, list: string) => `[${list.split(/,\s*/).join(', ')}]`)}\n`;
}

const readLock = (): Wire => {
  // Only a recording run may start from nothing.
  if (UPDATE && !existsSync(LOCK)) return { messages: {}, methods: {} };
  const { messages, methods } = JSON.parse(readFileSync(LOCK, 'utf8')) as Wire;
  return { messages, methods };
};

const listed = (lines: string[]) => lines.map((line) => `  - ${line}`).join('\n');

describe('gRPC wire (issue #17)', () => {
  const published = describeWire(PUBLISHED);

  it("carries the original gateway's four calls and messages number for number", () => {
    const original = describeWire(ORIGINAL);
    assert.deepEqual(Object.keys(original.methods).sort(), [
      'nexus.v1.NexusService/CheckConnection',
      'nexus.v1.NexusService/GetToken',
      'nexus.v1.NexusService/RefreshConnection',
      'nexus.v1.NexusService/RequestConnection',
    ]);
    const { breaking, added } = compareWire(original, published);
    assert.deepEqual(
      breaking,
      [],
      `proto/nexus/v1/nexus.proto is not wire-compatible with the original service:\n${listed(breaking)}`,
    );
    // Nexus may add to the original messages only on new numbers (this is the whole list today).
    assert.deepEqual(compareWire(original, restrictWire(published, original)).added, [
      'nexus.v1.RequestConnectionRequest field 7 `repeated Connection_config connection_config`',
      'nexus.v1.CheckConnectionResponse field 3 `string connection_id`',
      'nexus.v1.CheckConnectionResponse reserves 2',
    ]);
    assert.ok(added.includes('call nexus.v1.NexusService/RevokeConnection'));
  });

  it('keeps every number recorded in proto/wire.lock.json (numbers may only be added)', () => {
    const { breaking, added } = compareWire(readLock(), published);
    assert.deepEqual(
      breaking,
      [],
      'A field number is the wire: a deployed client reads it by number. Numbers may only be added; to ' +
        'retire a field, delete it and add `reserved <number>;`, and never reuse the number. Breaking ' +
        `changes against proto/wire.lock.json:\n${listed(breaking)}`,
    );
    if (UPDATE && added.length > 0) writeFileSync(LOCK, lockText(published));
    else
      assert.deepEqual(
        added,
        [],
        `proto/nexus has additions the lock does not record yet; record them with ${RECORD}:\n${listed(added)}`,
      );
    assert.equal(
      readFileSync(LOCK, 'utf8'),
      lockText(readLock()),
      'the lock is written by the test, unedited',
    );
  });

  it('tells a breaking change from an addition', () => {
    const before: Wire = {
      messages: {
        'nexus.v1.M': { fields: { '1': 'string a', '2': 'string b', '3': 'string c' }, reserved: [4] },
      },
      methods: { 'nexus.v1.S/Get': 'nexus.v1.M -> nexus.v1.M; GET /v1/m' },
    };
    const change = (edit: (w: Wire) => void) => {
      const after = structuredClone(before);
      edit(after);
      return compareWire(before, after);
    };
    const m = (w: Wire) => w.messages['nexus.v1.M']!;
    // Two numbers swapped: the very defect of issue #17.
    assert.deepEqual(
      change((w) => {
        m(w).fields = { '1': 'string b', '2': 'string a', '3': 'string c' };
      }).breaking,
      [
        'nexus.v1.M field 1 was `string a` and is now `string b`',
        'nexus.v1.M field 2 was `string b` and is now `string a`',
      ],
    );
    assert.deepEqual(
      change((w) => {
        m(w).fields['3'] = 'repeated string c';
      }).breaking,
      ['nexus.v1.M field 3 was `string c` and is now `repeated string c`'],
    );
    assert.deepEqual(
      change((w) => {
        delete m(w).fields['3'];
      }).breaking,
      ['nexus.v1.M field 3 (`string c`) was removed without `reserved 3;`'],
    );
    assert.deepEqual(
      change((w) => {
        delete m(w).fields['3'];
        m(w).reserved.push(3);
      }),
      { breaking: [], added: ['nexus.v1.M field 3 (`string c`) retired as reserved'] },
    );
    assert.deepEqual(
      change((w) => {
        m(w).fields['4'] = 'string d';
        m(w).reserved = [];
      }).breaking,
      ['nexus.v1.M field 4 is reserved and may not be used again (string d)'],
    );
    assert.deepEqual(
      change((w) => {
        w.methods['nexus.v1.S/Get'] = 'nexus.v1.M -> google.protobuf.Struct; GET /v1/m';
      }).breaking,
      [
        'call nexus.v1.S/Get was `nexus.v1.M -> nexus.v1.M; GET /v1/m` and is now `nexus.v1.M -> google.protobuf.Struct; GET /v1/m`',
      ],
    );
    assert.deepEqual(
      change((w) => {
        m(w).fields['5'] = 'string e';
        w.messages['nexus.v1.N'] = { fields: { '1': 'string x' }, reserved: [] };
        w.methods['nexus.v1.S/List'] = 'nexus.v1.N -> nexus.v1.N; no HTTP route';
      }),
      {
        breaking: [],
        added: ['nexus.v1.M field 5 `string e`', 'message nexus.v1.N', 'call nexus.v1.S/List'],
      },
    );
  });
});
