/** Small building blocks shared by the pages. */
import { useEffect, useRef, useState, type ReactNode } from 'react';
import type { ApiError, AssignmentStatus, DeviceStatus } from './api';
import { ASSIGNMENT_STATUS_HELP, ASSIGNMENT_STATUS_LABEL, DEVICE_STATUS_HELP, DEVICE_STATUS_LABEL, formatDateTime, shortHash, timeAgo } from './format';
import { useNow } from './hooks';

/** The page heading; it takes focus on navigation so screen readers announce the new page. */
export function PageTitle(props: { title: string; children?: ReactNode; actions?: ReactNode }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${props.title} · Uptide`;
    ref.current?.focus({ preventScroll: true });
  }, [props.title]);
  return (
    <div className="page-title">
      <div>
        <h1 ref={ref} tabIndex={-1}>
          {props.title}
        </h1>
        {props.children ? <div className="subtitle">{props.children}</div> : null}
      </div>
      {props.actions ? <div className="actions">{props.actions}</div> : null}
    </div>
  );
}

export function DeviceStatusBadge({ status }: { status: DeviceStatus }) {
  return (
    <span className={`badge status-${status}`} title={DEVICE_STATUS_HELP[status]} data-status={status}>
      {DEVICE_STATUS_LABEL[status]}
    </span>
  );
}

export function AssignmentBadge({ status }: { status: AssignmentStatus }) {
  return (
    <span className={`badge assignment-${status}`} title={ASSIGNMENT_STATUS_HELP[status]} data-status={status}>
      {ASSIGNMENT_STATUS_LABEL[status] ?? status}
    </span>
  );
}

export function Ago({ iso }: { iso: string | null | undefined }) {
  const now = useNow();
  if (!iso) return <span className="muted">never</span>;
  return (
    <time dateTime={iso} title={formatDateTime(iso)}>
      {timeAgo(iso, now)}
    </time>
  );
}

export function Hash({ value }: { value: string | undefined }) {
  return (
    <code className="hash" title={value}>
      {shortHash(value)}
    </code>
  );
}

export function ErrorBox({ error, title }: { error: ApiError | undefined; title?: string }) {
  if (!error) return null;
  return (
    <div className="notice error" role="alert">
      <strong>{title ?? 'Something went wrong.'}</strong> {error.message}
      {error.code && error.status !== 0 ? <span className="code"> ({error.code})</span> : null}
    </div>
  );
}

export function Notice({ kind = 'info', children }: { kind?: 'info' | 'success' | 'warning'; children: ReactNode }) {
  return (
    <div className={`notice ${kind}`} role="status">
      {children}
    </div>
  );
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p className="loading" role="status">
      {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

export function Section(props: { title: string; id?: string; actions?: ReactNode; children: ReactNode }) {
  const id = props.id ?? `s-${props.title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <section className="card" aria-labelledby={id}>
      <div className="card-head">
        <h2 id={id}>{props.title}</h2>
        {props.actions ? <div className="actions">{props.actions}</div> : null}
      </div>
      {props.children}
    </section>
  );
}

export function Pager(props: { offset: number; limit: number; total: number; onChange: (offset: number) => void; label: string }) {
  const { offset, limit, total } = props;
  if (total <= limit && offset === 0) return null;
  const from = total === 0 ? 0 : offset + 1;
  const to = Math.min(offset + limit, total);
  return (
    <nav className="pager" aria-label={`${props.label} pages`}>
      <button type="button" className="secondary" disabled={offset === 0} onClick={() => props.onChange(Math.max(0, offset - limit))}>
        ← Previous
      </button>
      <span>
        {from}–{to} of {total}
      </span>
      <button type="button" className="secondary" disabled={to >= total} onClick={() => props.onChange(offset + limit)}>
        Next →
      </button>
    </nav>
  );
}

/** A destructive action asked twice, inline (no modal dialog to trap focus). */
export function ConfirmButton(props: { label: string; confirm: string; onConfirm: () => void; disabled?: boolean; busy?: boolean }) {
  const [asking, setAsking] = useState(false);
  if (!asking)
    return (
      <button type="button" className="danger" disabled={props.disabled || props.busy} onClick={() => setAsking(true)}>
        {props.busy ? `${props.label}…` : props.label}
      </button>
    );
  return (
    <span className="confirm" role="group" aria-label={props.confirm}>
      <span>{props.confirm}</span>
      <button
        type="button"
        className="danger"
        autoFocus
        onClick={() => {
          setAsking(false);
          props.onConfirm();
        }}
      >
        Yes, {props.label.toLowerCase()}
      </button>
      <button type="button" className="secondary" onClick={() => setAsking(false)}>
        Keep
      </button>
    </span>
  );
}

const BAR_ORDER: AssignmentStatus[] = ['completed', 'in_flight', 'assigned', 'failed', 'cancelled'];

/** The devices of an update by status, as one stacked bar (with the numbers in text for everyone). */
export function CountsBar({ counts }: { counts: Partial<Record<AssignmentStatus, number>> }) {
  const total = BAR_ORDER.reduce((n, s) => n + (counts[s] ?? 0), 0);
  return (
    <div className="counts">
      <div className="bar" aria-hidden="true">
        {total === 0
          ? null
          : BAR_ORDER.filter((s) => (counts[s] ?? 0) > 0).map((s) => <span key={s} className={`seg assignment-${s}`} style={{ flexGrow: counts[s] ?? 0 }} />)}
      </div>
      <ul className="legend">
        {total === 0 ? (
          <li className="muted">no device assigned</li>
        ) : (
          BAR_ORDER.filter((s) => (counts[s] ?? 0) > 0).map((s) => (
            <li key={s}>
              <span className={`dot assignment-${s}`} aria-hidden="true" />
              {counts[s]} {ASSIGNMENT_STATUS_LABEL[s].toLowerCase()}
            </li>
          ))
        )}
      </ul>
    </div>
  );
}
