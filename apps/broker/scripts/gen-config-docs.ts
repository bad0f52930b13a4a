import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderConfigDocs } from '../src/config/docs.ts';
import { renderErrorDocs } from '../src/errors/docs.ts';

const docs = join(import.meta.dirname, '..', '..', '..', 'docs');
writeFileSync(join(docs, 'configuration.md'), renderConfigDocs());
writeFileSync(join(docs, 'errors.md'), renderErrorDocs());
console.log(`wrote ${docs}/configuration.md and ${docs}/errors.md`);
