import { randomBytes, randomUUID } from "node:crypto";

/** 32 lowercase hex characters from the CSPRNG (session and adapter ids). */
export const newId = (): string => randomBytes(16).toString("hex");

export const randomTrackName = (): string => randomUUID();
