// The Vietnamese chip citizen card (CCCD): what its front QR code holds, and the
// expiry rule, because the chip's access key needs the expiry date the QR lacks.

const DMY = /^(\d{2})(\d{2})(\d{4})$/;

function dmyToIso(text) {
  const m = DMY.exec(text ?? "");
  return m ? `${m[3]}-${m[2]}-${m[1]}` : null;
}

function validIso(iso) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(iso ?? "")) return false;
  const [y, m, d] = iso.split("-").map(Number);
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

/**
 * Parse the QR code on the front of a CCCD:
 * `ID number|old ID|full name|DOB ddmmyyyy|sex|address|issue date ddmmyyyy`.
 * Returns {idNumber, dateOfBirth, dateOfIssue} (ISO dates), or null when it is not one.
 * The name and address are not kept: the chip gives them, signed.
 */
export function parseCardQr(text) {
  const parts = (text ?? "").split("|");
  if (parts.length < 7 || !/^\d{12}$/.test(parts[0])) return null;
  const dateOfBirth = dmyToIso(parts[3]);
  const dateOfIssue = dmyToIso(parts[6]);
  if (!validIso(dateOfBirth) || !validIso(dateOfIssue)) return null;
  return { idNumber: parts[0], dateOfBirth, dateOfIssue };
}

/**
 * The expiry printed on a card (Law on Citizen Identification 2014, art. 21): cards
 * are renewed at ages 25, 40 and 60, and one issued within two years before such an
 * age is valid until the next.  Returns an ISO date, or null (valid for life).
 */
export function expectedExpiry(dateOfBirth, dateOfIssue) {
  const [y, m, d] = dateOfBirth.split("-").map(Number);
  for (const age of [25, 40, 60]) {
    const birthday = `${y + age}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`;
    const twoYearsBefore = `${y + age - 2}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`;
    if (dateOfIssue < twoYearsBefore) return birthday;
  }
  return null;
}

/** `dd/mm/yyyy` as Vietnamese cards print dates. */
export function isoToDisplay(iso) {
  if (!iso) return "";
  const [y, m, d] = iso.split("-");
  return `${d}/${m}/${y}`;
}

/** Parse `dd/mm/yyyy` (or `ddmmyyyy`, or ISO) typed by a person into ISO, or null. */
export function displayToIso(text) {
  const t = (text ?? "").trim();
  if (validIso(t)) return t;
  const digits = t.replace(/[^\d]/g, "");
  const iso = dmyToIso(digits);
  return validIso(iso) ? iso : null;
}

export function validIdNumber(text) {
  return /^\d{12}$/.test((text ?? "").replace(/\s/g, ""));
}
