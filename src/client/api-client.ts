/**
 * A small client for the Cloudflare-compatible HTTP API. It works against Patchbay and against
 * Cloudflare Realtime SFU alike: only the base URL and the secret change.
 */
export interface SessionDescriptionInit {
  type: "offer" | "answer";
  sdp: string;
}

export interface SimulcastPreference {
  preferredRid?: string;
  priorityOrdering?: "none" | "asciibetical";
  ridNotAvailable?: "none" | "asciibetical";
}

export interface TrackObject {
  location: "local" | "remote";
  mid?: string;
  trackName?: string;
  sessionId?: string;
  kind?: "audio" | "video";
  bidirectionalMediaStream?: boolean;
  simulcast?: SimulcastPreference;
  errorCode?: string;
  errorDescription?: string;
}

export interface TracksResponse {
  requiresImmediateRenegotiation: boolean;
  sessionDescription?: SessionDescriptionInit;
  tracks: TrackObject[];
}

export class ApiRequestError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    readonly errorDescription: string,
  ) {
    super(`${status} ${errorCode}: ${errorDescription}`);
  }
}

export interface RawResponse<T = unknown> {
  status: number;
  body: T;
}

export class ApiClient {
  /** `baseUrl` like `http://127.0.0.1:8787/v1` or `https://rtc.live.cloudflare.com/v1`. */
  constructor(
    readonly baseUrl: string,
    readonly appId: string,
    private readonly secret: string,
  ) {}

  /** Any request, without throwing on HTTP errors (tests look at the status). */
  async raw<T = unknown>(method: string, path: string, body?: unknown): Promise<RawResponse<T>> {
    const send = () =>
      fetch(`${this.baseUrl}/apps/${this.appId}/${path}`, {
        method,
        headers: { authorization: `Bearer ${this.secret}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    let res: Response;
    try {
      res = await send();
    } catch (err) {
      // A pooled keep-alive connection the server closed as idle just as we reused it: a GET is safe to send
      // again (a busy client's event loop can miss the moment the connection should have been retired).
      if (method !== "GET" || !isStaleConnection(err)) throw err;
      res = await send();
    }
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as T };
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.raw<T & { errorCode?: string; errorDescription?: string }>(method, path, body);
    if (res.status >= 400 || (res.body.errorCode && !("tracks" in res.body)))
      throw new ApiRequestError(res.status, res.body.errorCode ?? "unknown", res.body.errorDescription ?? "");
    return res.body;
  }

  /** `thirdparty`: the session will connect to another ICE-lite server (Patchbay runs full ICE for it). */
  newSession(
    offer?: SessionDescriptionInit,
    opts: { thirdparty?: boolean } = {},
  ): Promise<{ sessionId: string; sessionDescription?: SessionDescriptionInit }> {
    const path = opts.thirdparty ? "sessions/new?thirdparty=true" : "sessions/new";
    return this.call("POST", path, offer ? { sessionDescription: offer } : undefined);
  }

  getSession(sessionId: string): Promise<{ tracks: (TrackObject & { status: string })[] }> {
    return this.call("GET", `sessions/${sessionId}`);
  }

  newTracks(
    sessionId: string,
    req: { tracks?: TrackObject[]; sessionDescription?: SessionDescriptionInit; autoDiscover?: boolean },
  ): Promise<TracksResponse> {
    return this.call("POST", `sessions/${sessionId}/tracks/new`, req);
  }

  renegotiate(sessionId: string, answer: SessionDescriptionInit): Promise<Record<string, never>> {
    return this.call("PUT", `sessions/${sessionId}/renegotiate`, { sessionDescription: answer });
  }

  /** PUT tracks/update: simulcast preference of a pull, or another track on the same m-line. */
  updateTracks(
    sessionId: string,
    req: { tracks: (Partial<TrackObject> & { mid: string })[] },
  ): Promise<TracksResponse> {
    return this.call("PUT", `sessions/${sessionId}/tracks/update`, req);
  }

  closeTracks(
    sessionId: string,
    req: { tracks: { mid: string }[]; sessionDescription?: SessionDescriptionInit; force?: boolean },
  ): Promise<TracksResponse> {
    return this.call("PUT", `sessions/${sessionId}/tracks/close`, req);
  }
}

function isStaleConnection(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string } }).cause;
  return cause?.code === "UND_ERR_SOCKET" || cause?.code === "ECONNRESET";
}
