import { useEffect, useState } from 'react';
import { api, DEVICE_STATUSES, query, type DeviceStatus } from '../api';
import { Ago, DeviceStatusBadge, Empty, ErrorBox, Loading, PageTitle, Pager } from '../components';
import { DEVICE_STATUS_LABEL } from '../format';
import { useDebounced, useLoad } from '../hooks';
import { Link, navigate, useLocation } from '../router';

const PAGE = 25;

export function Devices() {
  const { search } = useLocation();
  const status = (search.get('status') ?? '') as DeviceStatus | '';
  const group = search.get('group') ?? '';
  const offset = Math.max(0, Number(search.get('offset') ?? 0) || 0);
  const [text, setText] = useState(search.get('q') ?? '');
  const q = useDebounced(text.trim(), 250);

  // Filters live in the address, so a filtered list can be bookmarked and shared.
  const setFilters = (f: { q?: string; status?: string; group?: string; offset?: number }) => {
    const next = { q, status, group, offset: 0, ...f };
    navigate(`/devices${query({ q: next.q, status: next.status, group: next.group, offset: next.offset || undefined })}`, { replace: true });
  };
  useEffect(() => {
    if (q !== (search.get('q') ?? '')) setFilters({ q });
  }, [q]);

  const groups = useLoad('groups', () => api.groups());
  const key = `devices?${q}|${status}|${group}|${offset}`;
  const list = useLoad(
    key,
    (signal) => api.devices({ nameContains: q || undefined, status: status || undefined, groupId: group || undefined, offset, limit: PAGE }, signal),
    15_000,
  );

  return (
    <>
      <PageTitle title="Devices">The vehicles and other devices of this namespace, with the status of their updates.</PageTitle>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()} aria-label="Filter devices">
        <div className="field">
          <label htmlFor="f-q">Name contains</label>
          <input id="f-q" type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder="e.g. car-" />
        </div>
        <div className="field">
          <label htmlFor="f-status">Status</label>
          <select id="f-status" value={status} onChange={(e) => setFilters({ status: e.target.value })}>
            <option value="">Any status</option>
            {DEVICE_STATUSES.map((s) => (
              <option key={s} value={s}>
                {DEVICE_STATUS_LABEL[s]}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="f-group">Group</label>
          <select id="f-group" value={group} onChange={(e) => setFilters({ group: e.target.value })}>
            <option value="">Any group</option>
            {(groups.data?.values ?? []).map((g) => (
              <option key={g.id} value={g.id}>
                {g.name} ({g.size})
              </option>
            ))}
          </select>
        </div>
      </form>

      <ErrorBox error={list.error} title="Could not load devices." />
      {list.data === undefined ? (
        list.loading ? (
          <Loading />
        ) : null
      ) : list.data.total === 0 ? (
        <Empty>
          {q || status || group ? (
            'No device matches these filters.'
          ) : (
            <>
              No devices yet. Provision one with <code>npx uptide devices provision DEVICE_ID --out DIR --hardware-id HW</code> and start its client; it shows
              up here once it registers its ECUs.
            </>
          )}
        </Empty>
      ) : (
        <div className="card flush">
          <table className="devices">
            <caption className="visually-hidden">Devices, {list.data.total} in all</caption>
            <thead>
              <tr>
                <th scope="col">Device</th>
                <th scope="col">Status</th>
                <th scope="col">Last seen</th>
                <th scope="col">Type</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {list.data.values.map((d) => (
                <tr key={d.deviceId}>
                  <td>
                    <Link to={`/devices/${encodeURIComponent(d.deviceId)}`}>{d.deviceName}</Link>
                    {d.deviceName !== d.deviceId ? <div className="muted small">{d.deviceId}</div> : null}
                  </td>
                  <td>
                    <DeviceStatusBadge status={d.deviceStatus} />
                  </td>
                  <td>
                    <Ago iso={d.lastSeen} />
                  </td>
                  <td>{d.deviceType}</td>
                  <td>
                    <Ago iso={d.createdAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager label="Devices" offset={offset} limit={PAGE} total={list.data.total} onChange={(o) => setFilters({ offset: o })} />
        </div>
      )}
    </>
  );
}
