import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderConfigDocs, renderMigratingDocs } from '../src/config/docs.ts';
import { renderErrorDocs } from '../src/errors/docs.ts';

const docs = join(import.meta.dirname, '..', '..', '..', 'docs');
writeFileSync(join(docs, 'configuration.md'), renderConfigDocs());
writeFileSync(join(docs, 'errors.md'), renderErrorDocs());
// Only the variable tables of the migration guide are generated; the rest is written by hand.
const migrating = join(docs, 'migrating.md');
writeFileSync(migrating, renderMigratingDocs(readFileSync(migrating, 'utf8')));
console.log(`wrote ${docs}/configuration.md, ${docs}/errors.md and the variable tables of ${migrating}`);
