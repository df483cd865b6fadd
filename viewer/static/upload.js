// Drag and drop onto the upload form's drop zone; fills the file input and suggests a name.
(function () {
  const zone = document.getElementById("dropzone");
  if (!zone) return;
  const input = zone.querySelector("input[type=file]");
  const name = document.querySelector("input[name=name]");
  const suggest = () => {
    if (name && !name.value && input.files.length) {
      name.value = input.files[0].name.replace(/\.(joblib|pkl|pickle|skops)(\.(gz|z|bz2|xz|lzma))?$/i, "")
        .replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 100);
    }
  };
  ["dragenter", "dragover"].forEach((ev) => zone.addEventListener(ev, (e) => {
    e.preventDefault(); zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((ev) => zone.addEventListener(ev, (e) => {
    e.preventDefault(); zone.classList.remove("over");
  }));
  zone.addEventListener("drop", (e) => {
    if (e.dataTransfer.files.length) { input.files = e.dataTransfer.files; suggest(); }
  });
  input.addEventListener("change", suggest);
})();

// Upload progress: the form is sent with XMLHttpRequest so the page can show bytes sent, speed
// and a cancel button; without JavaScript it is a plain form post. The server's answer is what a
// plain post would show: after a redirect the browser goes there, otherwise (a refusal beside
// the field, a duplicate) the returned page replaces this one.
(function () {
  const form = document.querySelector("form[data-progress]");
  const box = document.getElementById("upload-progress");
  if (!form || !box || !window.FormData || !window.XMLHttpRequest) return;
  const bar = box.querySelector("progress");
  const sent = box.querySelector(".sent");
  const speed = box.querySelector(".speed");
  const cancel = box.querySelector(".cancel");
  const submit = form.querySelector("button[type=submit]");
  const size = (n) => n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : n >= 1024 ? (n / 1024).toFixed(0) + " kB" : n + " B";
  let xhr = null;
  form.addEventListener("submit", (event) => {
    const input = form.querySelector("input[type=file]");
    if (!input || !input.files.length) return;          // the server says what is missing
    event.preventDefault();
    xhr = new XMLHttpRequest();
    const started = Date.now();
    xhr.open("POST", form.getAttribute("action") || window.location.href);
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      bar.max = e.total; bar.value = e.loaded;
      sent.textContent = size(e.loaded) + " of " + size(e.total) + " sent";
      const seconds = (Date.now() - started) / 1000;
      if (seconds > 0.2) speed.textContent = size(e.loaded / seconds) + "/s";
      if (e.loaded >= e.total) sent.textContent = size(e.total) + " sent; reading the file…";
    });
    xhr.addEventListener("load", () => {
      const here = new URL(form.getAttribute("action") || window.location.href, window.location.href);
      if (xhr.responseURL && new URL(xhr.responseURL).pathname !== here.pathname) {
        window.location.assign(xhr.responseURL);
        return;
      }
      document.open(); document.write(xhr.responseText); document.close();
    });
    xhr.addEventListener("error", () => {
      box.hidden = true; submit.disabled = false;
      sent.textContent = "";
      alert("The upload failed: the connection was lost. Try again.");
    });
    xhr.addEventListener("abort", () => {
      box.hidden = true; submit.disabled = false;
      bar.value = 0; sent.textContent = ""; speed.textContent = "";
    });
    box.hidden = false; submit.disabled = true;
    sent.textContent = "Starting…"; speed.textContent = "";
    xhr.send(new FormData(form));
  });
  cancel.addEventListener("click", () => { if (xhr) xhr.abort(); });
})();
