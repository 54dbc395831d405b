# Sourced by scripts/test and scripts/demo: finds the Python a Blender version needs and
# makes (once) a virtual environment with the `bpy` module from PyPI.
#   SHOTLINE_BLENDER=5.2 (default; Python 3.13) or 4.5 (Blender 4.5 LTS; Python 3.11)

shotline_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shotline_blender="${SHOTLINE_BLENDER:-5.2}"

case "$shotline_blender" in
  5.2) shotline_py=3.13; shotline_bpy="bpy==5.2.*" ;;
  4.5) shotline_py=3.11; shotline_bpy="bpy==4.5.*" ;;
  *) echo "SHOTLINE_BLENDER must be 5.2 or 4.5, not '$shotline_blender'" >&2; return 2 ;;
esac

shotline_find_python() {
  local want="python$shotline_py" candidate
  if command -v "$want" >/dev/null 2>&1 && "$want" -c "" 2>/dev/null; then
    command -v "$want"; return 0
  fi
  if command -v pyenv >/dev/null 2>&1; then
    for candidate in "$(pyenv root)"/versions/"$shotline_py"*/bin/"$want"; do
      [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
  fi
  for candidate in /usr/bin/"$want" /usr/local/bin/"$want"; do
    [ -x "$candidate" ] && { echo "$candidate"; return 0; }
  done
  return 1
}

shotline_venv="$shotline_root/.venv-blender$shotline_blender"
shotline_requirements="$shotline_bpy pytest Pillow==11.3.0"

if [ ! -f "$shotline_venv/.ready" ] || [ "$(cat "$shotline_venv/.ready")" != "$shotline_requirements" ]; then
  if ! shotline_python="$(shotline_find_python)"; then
    echo "Blender $shotline_blender's bpy module needs Python $shotline_py, which is not installed." >&2
    echo "Install it (for example: pyenv install $shotline_py, or apt-get install python$shotline_py python$shotline_py-venv) and run this again." >&2
    return 3
  fi
  echo "Creating $shotline_venv with $shotline_bpy (Python $shotline_py, first run only; about 1 GB)..." >&2
  "$shotline_python" -m venv "$shotline_venv" || return 4
  "$shotline_venv/bin/python" -m pip install --quiet --upgrade pip >&2 || return 4
  # shellcheck disable=SC2086
  "$shotline_venv/bin/python" -m pip install --quiet $shotline_requirements >&2 || return 4
  echo "$shotline_requirements" > "$shotline_venv/.ready"
fi

shotline_venv_python="$shotline_venv/bin/python"
