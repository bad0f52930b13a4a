import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { renderConfigDocs, renderMigratingDocs } from './docs.ts';
import { envSchema } from './schema.ts';

describe('configuration reference', () => {
  it('docs/configuration.md matches the schema (run `npm run docs:config` after changing it)', () => {
    const file = readFileSync(
      join(import.meta.dirname, '..', '..', '..', '..', 'docs', 'configuration.md'),
      'utf8',
    );
    assert.equal(file, renderConfigDocs());
  });

  it('documents every variable with a description', () => {
    const docs = renderConfigDocs();
    for (const [name, schema] of Object.entries(envSchema.shape)) {
      assert.ok(docs.includes(`\`${name}\``), name);
      assert.ok((schema.description ?? '').length > 10, `${name} needs a description`);
    }
  });

  it('docs/migrating.md holds the variable tables of original-variables.ts (run `npm run docs:config`)', () => {
    const file = readFileSync(
      join(import.meta.dirname, '..', '..', '..', '..', 'docs', 'migrating.md'),
      'utf8',
    );
    assert.equal(file, renderMigratingDocs(file));
  });
});
