import { api, DEVICE_STATUSES, type DeviceStatus, type UpdateStatus } from '../api';
import { Ago, CountsBar, Empty, ErrorBox, Loading, PageTitle, Section } from '../components';
import { attackSource, DEVICE_STATUS_HELP, DEVICE_STATUS_LABEL, updateImages } from '../format';
import { useLoad } from '../hooks';
import { Link } from '../router';

const REFRESH_MS = 10_000;

interface Fleet {
  readonly total: number;
  readonly byStatus: Record<DeviceStatus, number>;
  readonly images: number;
}

async function loadFleet(signal: AbortSignal): Promise<Fleet> {
  const [stats, images] = await Promise.all([api.fleetStats(signal), api.images({ limit: 1 })]);
  const byStatus = Object.fromEntries(DEVICE_STATUSES.map((s) => [s, stats.byStatus[s] ?? 0])) as Record<DeviceStatus, number>;
  return { total: stats.total, byStatus, images: images.total };
}

async function loadRecentUpdates(): Promise<UpdateStatus[]> {
  const page = await api.updates({ limit: 5 });
  return Promise.all(page.values.map((u) => api.update(u.id)));
}

export function Overview() {
  const fleet = useLoad('fleet', loadFleet, REFRESH_MS);
  const updates = useLoad('recent-updates', loadRecentUpdates, REFRESH_MS);
  const attacks = useLoad('attacks', () => api.attacks(10), REFRESH_MS);

  return (
    <>
      <PageTitle
        title="Overview"
        actions={
          <Link to="/updates/new" className="button">
            New update
          </Link>
        }
      />
      <ErrorBox error={fleet.error} title="Could not load the fleet." />
      {fleet.data && fleet.data.total === 0 && fleet.data.images === 0 ? <GettingStarted /> : null}

      <section aria-labelledby="fleet-title" className="card">
        <div className="card-head">
          <h2 id="fleet-title">Devices by status</h2>
          <div className="actions">
            {fleet.data ? (
              <Link to="/devices">
                all {fleet.data.total} device{fleet.data.total === 1 ? '' : 's'}
              </Link>
            ) : null}
          </div>
        </div>
        {fleet.data ? (
          <ul className="tiles">
            {DEVICE_STATUSES.map((s) => (
              <li key={s}>
                <Link to={`/devices?status=${s}`} className={`tile status-${s}`} title={DEVICE_STATUS_HELP[s]} data-status={s}>
                  <span className="n">{fleet.data?.byStatus[s] ?? 0}</span>
                  <span className="label">{DEVICE_STATUS_LABEL[s]}</span>
                </Link>
              </li>
            ))}
          </ul>
        ) : fleet.loading ? (
          <Loading />
        ) : null}
      </section>

      <div className="columns">
        <Section title="Recent updates" actions={<Link to="/updates">all updates</Link>}>
          <ErrorBox error={updates.error} />
          {updates.data === undefined ? (
            updates.loading ? (
              <Loading />
            ) : null
          ) : updates.data.length === 0 ? (
            <Empty>
              No updates yet. <Link to="/updates/new">Launch one</Link> once an image is uploaded and a device has registered.
            </Empty>
          ) : (
            <ul className="list">
              {updates.data.map((u) => (
                <li key={u.id}>
                  <div className="row">
                    <Link to={`/updates/${u.id}`}>{u.name ?? updateImages(u.targets).join(', ')}</Link>
                    <span className="muted">
                      <Ago iso={u.createdAt} />
                    </span>
                  </div>
                  <CountsBar counts={u.counts} />
                </li>
              ))}
            </ul>
          )}
        </Section>

        <Section title="Recent attacks reported">
          <ErrorBox error={attacks.error} />
          {attacks.data === undefined ? (
            attacks.loading ? (
              <Loading />
            ) : null
          ) : attacks.data.length === 0 ? (
            <Empty>
              No attacks reported. ECUs report what their verification refused (rollback, freeze, mix-and-match, arbitrary software…), and manifests the
              Director refused show here too.
            </Empty>
          ) : (
            <table>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Device</th>
                  <th scope="col">What</th>
                </tr>
              </thead>
              <tbody>
                {attacks.data.map((a, i) => (
                  <tr key={`${a.at}-${i}`}>
                    <td>
                      <Ago iso={a.at} />
                    </td>
                    <td>
                      {a.device ? <Link to={`/devices/${encodeURIComponent(a.device)}`}>{a.device}</Link> : '–'}
                      {a.ecu ? <div className="muted small">ECU {a.ecu}</div> : null}
                    </td>
                    <td>
                      <span className="badge attack">{a.code}</span> {a.message}
                      <div className="muted small">
                        {attackSource(a.source)}
                        {a.repository ? ` · ${a.repository}${a.role ? ` ${a.role}` : ''}` : ''}
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Section>
      </div>
    </>
  );
}

function GettingStarted() {
  return (
    <section className="card getting-started" aria-labelledby="gs-title">
      <h2 id="gs-title">Getting started</h2>
      <ol>
        <li>
          <Link to="/images">Upload an image</Link> and name the hardware ids it is built for.
        </li>
        <li>
          Provision a device: <code>npx uptide devices provision my-device --out ./my-device --hardware-id my-board</code>, then start aktualizr or{' '}
          <code>uptide-device</code> with that configuration. It shows up under <Link to="/devices">Devices</Link> once it registers.
        </li>
        <li>
          <Link to="/updates/new">Launch an update</Link> and follow it per device and ECU.
        </li>
      </ol>
    </section>
  );
}
