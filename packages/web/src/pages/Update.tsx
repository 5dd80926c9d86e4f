import { useState } from 'react';
import { api, type LaunchResult, type UpdateStatus } from '../api';
import { AssignmentBadge, Ago, ConfirmButton, CountsBar, Empty, ErrorBox, Loading, Notice, PageTitle, Section } from '../components';
import { formatDateTime, updateImages } from '../format';
import { useAction, useLoad } from '../hooks';
import { Link } from '../router';
import { Affected } from './NewUpdate';

const REFRESH_MS = 3_000;

function isActive(u: UpdateStatus): boolean {
  return (u.counts.assigned ?? 0) > 0 || (u.counts.in_flight ?? 0) > 0;
}

export function UpdatePage({ id }: { id: string }) {
  // The launch result (who was not updated, and why) comes with the navigation from "New update".
  const [launched] = useState<LaunchResult | undefined>(() => {
    const s = window.history.state as { launched?: LaunchResult } | null;
    return s?.launched?.id === id ? s.launched : undefined;
  });
  const [auto, setAuto] = useState(true);
  const first = useLoad(`update:${id}`, () => api.update(id), auto ? REFRESH_MS : undefined);
  const cancel = useAction(() => api.cancelUpdate(id));

  const u = first.data;
  if (first.error?.status === 404)
    return (
      <>
        <PageTitle title="Update not found" />
        <ErrorBox error={first.error} />
        <Link to="/updates">All updates</Link>
      </>
    );
  if (!u)
    return (
      <>
        <PageTitle title="Update" />
        <ErrorBox error={first.error} title="Could not load the update." />
        {first.loading ? <Loading /> : null}
      </>
    );

  const active = isActive(u);
  return (
    <>
      <PageTitle
        title={u.name ?? `Update ${u.id.slice(0, 8)}`}
        actions={
          active ? (
            <ConfirmButton
              label="Cancel update"
              confirm="Cancel on every device that has not fetched it yet?"
              busy={cancel.busy}
              onConfirm={() => void cancel.run().then(() => first.reload())}
            />
          ) : null
        }
      >
        <span className="mono">{updateImages(u.targets).join(', ')}</span> · created <Ago iso={u.createdAt} /> · <span className="mono small">{u.id}</span>
      </PageTitle>
      {launched ? <Affected result={launched} /> : null}
      <ErrorBox error={cancel.error} title="Could not cancel." />
      {cancel.result ? (
        <Notice kind={cancel.result.inFlight.length > 0 ? 'warning' : 'success'}>
          Cancelled on {cancel.result.cancelled.length} device{cancel.result.cancelled.length === 1 ? '' : 's'}.
          {cancel.result.inFlight.length > 0
            ? ` Already in flight on ${cancel.result.inFlight.join(', ')}: those devices have fetched the update and will finish it.`
            : ''}
        </Notice>
      ) : null}

      <section className="card" aria-labelledby="progress-title">
        <div className="card-head">
          <h2 id="progress-title">Progress</h2>
          <div className="actions refresh">
            <label>
              <input type="checkbox" checked={auto} onChange={(e) => setAuto(e.target.checked)} /> Refresh every {REFRESH_MS / 1000} s
            </label>
            <span className="muted small" aria-live="off">
              {first.loadedAt ? `updated ${formatDateTime(new Date(first.loadedAt).toISOString())}` : ''}
            </span>
          </div>
        </div>
        <CountsBar counts={u.counts} />
        <p className="muted small">
          {active
            ? 'Assigned: waiting for the device to fetch it (still cancellable). In flight: the device has fetched it and is installing.'
            : 'Every device has finished: completed, failed or cancelled.'}
        </p>
      </section>

      <Section title="Devices and ECUs">
        <ErrorBox error={first.error} title="Could not refresh." />
        {u.devices.length === 0 ? (
          <Empty>No device was assigned this update.</Empty>
        ) : (
          <table className="per-ecu">
            <thead>
              <tr>
                <th scope="col">Device</th>
                <th scope="col">ECU</th>
                <th scope="col">Hardware id</th>
                <th scope="col">Image</th>
                <th scope="col">Status</th>
                <th scope="col">Result</th>
                <th scope="col">Changed</th>
              </tr>
            </thead>
            {u.devices.map((d) => (
              <tbody key={d.device} data-device={d.device} data-status={d.status}>
                {d.ecus.map((e, i) => (
                  <tr key={e.ecu} className={i === 0 ? 'first' : undefined}>
                    {i === 0 ? (
                      <th scope="rowgroup" rowSpan={d.ecus.length}>
                        <Link to={`/devices/${encodeURIComponent(d.device)}`}>{d.device}</Link>
                        <div>
                          <AssignmentBadge status={d.status} />
                        </div>
                      </th>
                    ) : null}
                    <td className="mono">{e.ecu}</td>
                    <td className="mono">{e.hardwareId}</td>
                    <td className="mono">{e.target}</td>
                    <td>
                      <AssignmentBadge status={e.status} />
                    </td>
                    <td>
                      {e.resultCode ? (
                        <>
                          <span className="mono">{e.resultCode}</span>
                          {e.resultDescription ? <div className="muted small">{e.resultDescription}</div> : null}
                        </>
                      ) : (
                        <span className="muted">–</span>
                      )}
                    </td>
                    <td>
                      <Ago iso={e.updatedAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            ))}
          </table>
        )}
      </Section>
    </>
  );
}
