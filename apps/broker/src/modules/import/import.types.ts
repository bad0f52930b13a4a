import type { AuditContext, AuditService } from '../audit/audit.service.ts';
import type { ConnectionImport } from '../connections/connections.import.ts';
import type { ProvidersService } from '../providers/providers.service.ts';
import type { OriginalSource } from './original-source.ts';

/** What happened to one row of the source (or, in a dry run, what would happen). */
export type RowOutcome =
  | 'created'
  | 'imported'
  | 'updated'
  | 'unchanged'
  | 'would_create'
  | 'would_import'
  | 'would_update'
  | 'skipped'
  | 'failed';

/** One line of the report. `reason` names fields and ids, never a secret. */
export interface RowReport {
  readonly kind: 'provider' | 'alias' | 'connection' | 'audit';
  /** The source row's id (for an alias: the alias). */
  readonly id: string;
  readonly name?: string;
  readonly outcome: RowOutcome;
  readonly reason?: string;
  /** For providers: the Nexus id it maps to (the original's, unless a Nexus row already had that id). */
  readonly nexus_id?: string;
}

export type Counts = Partial<Record<RowOutcome, number>>;

export interface ImportReport {
  readonly dry_run: boolean;
  readonly source: string;
  readonly providers: Counts;
  readonly aliases: Counts;
  readonly connections: Counts;
  readonly audit: Counts | undefined;
  /** Every row that was not simply imported or already there: skipped, failed, updated. */
  readonly rows: RowReport[];
  readonly interrupted: boolean;
}

/** What the import writes through: the same services the admin API and activation use. */
export interface ImportTarget {
  readonly providers: Pick<ProvidersService, 'create' | 'resolve' | 'loadForUse' | 'addAlias' | 'aliases'>;
  readonly connections: Pick<ConnectionImport, 'existing' | 'insert' | 'replaceCredentials'>;
  readonly audit: Pick<AuditService, 'record' | 'query' | 'flush'>;
}

export interface ImportDeps {
  readonly source: OriginalSource;
  readonly key: Uint8Array;
  /** Nexus's side: read always (what is already there), written only with `apply`. */
  readonly nexus: ImportTarget;
  /** False: a dry run, which reports what it would do and writes nothing to Nexus. */
  readonly apply: boolean;
  /**
   * A dry run's scratch provider registry: each profile is created there, so the dry run applies
   * the same validation and translation as the real create without writing to Nexus.
   */
  readonly rehearsal: Pick<ProvidersService, 'create'> | null;
  readonly ctx: AuditContext;
  readonly withAudit: boolean;
  /** Audit events recorded together (at most one audit batch: a batch commits whole). */
  readonly auditBatch: number;
  readonly signal?: AbortSignal;
  readonly now?: () => number;
  readonly onProgress?: (done: number, total: number) => void;
}

/** A running tally and the rows worth reporting. */
export class Tally {
  readonly rows: RowReport[] = [];
  readonly counts = {
    provider: {} as Counts,
    alias: {} as Counts,
    connection: {} as Counts,
    audit: {} as Counts,
  };

  add(row: RowReport): void {
    const c = this.counts[row.kind];
    c[row.outcome] = (c[row.outcome] ?? 0) + 1;
    const plain =
      (row.outcome === 'imported' || row.outcome === 'would_import' || row.outcome === 'unchanged') &&
      !row.reason;
    if (!plain && row.kind !== 'audit') this.rows.push(row);
  }

  /** Counts only (audit events are many and alike). */
  count(kind: RowReport['kind'], outcome: RowOutcome, n = 1): void {
    const c = this.counts[kind];
    c[outcome] = (c[outcome] ?? 0) + n;
  }
}
