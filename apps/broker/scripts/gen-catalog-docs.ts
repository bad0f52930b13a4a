/** `npm run docs:catalog`: writes docs/catalog.md from catalog/providers/*.yaml; fails on a broken entry. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderCatalogDocs } from '../src/modules/catalog/catalog-docs.ts';
import { loadCatalog } from '../src/modules/catalog/catalog-loader.ts';

const { entries, problems } = await loadCatalog();
if (problems.length > 0) {
  for (const p of problems) console.error(`${p.file}: ${p.message}`);
  console.error('docs/catalog.md was not written: fix the entries above first');
  process.exit(1);
}
const page = join(import.meta.dirname, '..', '..', '..', 'docs', 'catalog.md');
writeFileSync(page, renderCatalogDocs([...entries.values()]));
console.log(`wrote ${page} (${entries.size} entries)`);
