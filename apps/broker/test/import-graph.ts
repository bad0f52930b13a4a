/**
 * The broker's import graph, read from the source text: every relative `import … from`,
 * `export … from`, side-effect `import '…'` and dynamic `import('…')` of apps/broker/src/**\/*.ts
 * (tests excluded), type-only imports included (a type is a dependency too). Paths are relative
 * to apps/broker/src, with `/` separators. Used by dependency-rules.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';

export const SRC = join(import.meta.dirname, '..', 'src');

export interface ImportEdge {
  /** The importing file, e.g. `crypto/transit.ts`. */
  readonly from: string;
  /** The imported file, e.g. `vault/vault.http.ts`. */
  readonly to: string;
  /** The line of the import (1-based), for the failure message. */
  readonly line: number;
}

/** Every `.ts` source file under `root` (relative, `/`-separated), tests excluded. */
export function sourceFiles(root: string = SRC): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts'))
        files.push(relative(root, path).split(sep).join('/'));
    }
  };
  walk(root);
  return files.sort();
}

// `from '…'` ends every static import and re-export, on one line or several; a bare `import '…'`
// and `import('…')` are the other two forms. Only relative specifiers are edges of this graph.
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(?\s*)(['"])(\.{1,2}\/[^'"]+)\1/g;

/** The relative imports of one file's text, resolved against the file's own path. */
export function importsOf(file: string, text: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  const lines = text.split('\n');
  let inComment = false;
  lines.forEach((raw, index) => {
    // Skip block comments and line comments: doc comments quote import lines as examples.
    let line = raw;
    if (inComment) {
      const end = line.indexOf('*/');
      if (end === -1) return;
      line = line.slice(end + 2);
      inComment = false;
    }
    const start = line.indexOf('/*');
    if (start !== -1 && line.indexOf('*/', start) === -1) {
      inComment = true;
      line = line.slice(0, start);
    }
    if (line.trimStart().startsWith('//') || line.trimStart().startsWith('*')) return;
    for (const match of line.matchAll(SPECIFIER)) {
      const specifier = match[2] as string;
      edges.push({
        from: file,
        to: posix.normalize(posix.join(posix.dirname(file), specifier)),
        line: index + 1,
      });
    }
  });
  return edges;
}

/** The whole graph of the broker's sources. */
export function importGraph(root: string = SRC): ImportEdge[] {
  return sourceFiles(root).flatMap((file) => importsOf(file, readFileSync(join(root, file), 'utf8')));
}
