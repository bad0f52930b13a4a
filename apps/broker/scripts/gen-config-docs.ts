import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderConfigDocs } from '../src/config/docs.ts';

const target = join(import.meta.dirname, '..', '..', '..', 'docs', 'configuration.md');
writeFileSync(target, renderConfigDocs());
console.log(`wrote ${target}`);
