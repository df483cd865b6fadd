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
