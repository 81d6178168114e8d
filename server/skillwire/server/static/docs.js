// /docs: Swagger UI over the server's own /openapi.json, with a key the user types once.
//
// The key stays in this tab (sessionStorage, so a reload keeps it and closing the tab forgets
// it) and goes out only as the Authorization header: never in a URL, where it would end up in
// the history and in logs. Every asset is served by skillwire itself (no CDN).

const STORAGE = "skillwire.docs.key";
const form = document.getElementById("sw-key-form");
const input = document.getElementById("sw-key");
const forget = document.getElementById("sw-forget");
const message = document.getElementById("sw-message");
const hint = document.getElementById("sw-hint");

function stored() {
  try {
    return sessionStorage.getItem(STORAGE);
  } catch {
    return null; // storage disabled: the key lives in this page's memory only
  }
}

function keep(key) {
  try {
    if (key) sessionStorage.setItem(STORAGE, key);
    else sessionStorage.removeItem(STORAGE);
  } catch {
    // storage disabled: nothing to keep or forget
  }
}

let current = null;

async function show(key) {
  message.textContent = "loading…";
  let response;
  try {
    response = await fetch("openapi.json", {
      headers: { Authorization: `Bearer ${key}` },
      cache: "no-store",
    });
  } catch (error) {
    message.textContent = `cannot reach the server: ${error}`;
    return;
  }
  if (!response.ok) {
    let detail = `${response.status}`;
    try {
      const body = await response.json();
      detail = `${response.status} ${body.error.code}: ${body.error.message}`;
    } catch {
      // not the error envelope: the status says enough
    }
    message.textContent = detail;
    keep(null);
    forget.hidden = true;
    return;
  }
  const spec = await response.json();
  current = key;
  keep(key);
  message.textContent = "";
  hint.hidden = true;
  forget.hidden = false;
  input.value = "";
  input.placeholder = "key in use (type another to switch)";
  window.SwaggerUIBundle({
    spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    tryItOutEnabled: true,
    // Every "Try it out" call carries the key as a header.
    requestInterceptor: (request) => {
      request.headers.Authorization = `Bearer ${key}`;
      return request;
    },
  });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = input.value.trim();
  if (key) show(key);
});

forget.addEventListener("click", () => {
  keep(null);
  location.reload();
});

// A plain link cannot send the header: fetch the document with it and show what came back.
for (const link of document.querySelectorAll("a.sw-spec")) {
  link.addEventListener("click", async (event) => {
    if (!current) return; // without a key, the server's 401 says what is missing
    event.preventDefault();
    const response = await fetch(link.getAttribute("href"), {
      headers: { Authorization: `Bearer ${current}` },
    });
    const blob = new Blob([await response.text()], { type: "application/json" });
    window.open(URL.createObjectURL(blob), "_blank", "noopener");
  });
}

const key = stored();
if (key) show(key);
