"""Runfiles layout for folders that pyproject.toml maps onto other package names.

pyproject.toml installs `layers/` as `pali_pax.layers`, `tasks/` as `pali_pax.tasks`
and `fiddle_configs/` as `pali_pax.fiddle_configs` (setuptools `package-dir`). Bazel
puts a source file in runfiles at its workspace path (`layers/vit.py`), where
`import pali_pax.layers.vit` cannot find it: `pali_pax/__init__.py` makes `pali_pax`
a regular package whose `__path__` is only `pali_pax/`, so an `imports = [...]`
entry on sys.path cannot add a `layers` subpackage to it.

`mapped_py_library` therefore also links each source (and data) file of the target
into runfiles under the mapped package path (`pali_pax/layers/vit.py`), next to the
real `pali_pax/` sources, exactly as the installed wheel lays them out. `__file__`
then points into `pali_pax/<package>/`, so data found relative to it (`tasks/data/`)
is linked there too. Each library carries only its own files, so a target can
import only the modules it depends on.
"""

load("@rules_python//python:defs.bzl", "py_library")

# Bazel package -> Python package path in runfiles; the same table as
# [tool.setuptools] package-dir in pyproject.toml (tools/check_build.py checks that).
PACKAGE_DIRS = {
    "fiddle_configs": "pali_pax/fiddle_configs",
    "layers": "pali_pax/layers",
    "tasks": "pali_pax/tasks",
}

def _package_dir_impl(ctx):
    prefix = ctx.label.package + "/"
    links = {}
    for f in ctx.files.srcs:
        if not f.short_path.startswith(prefix):
            fail("%s is not under %s" % (f.short_path, prefix))
        links[ctx.attr.package_path + "/" + f.short_path[len(prefix):]] = f
    return [DefaultInfo(runfiles = ctx.runfiles(symlinks = links))]

package_dir = rule(
    implementation = _package_dir_impl,
    doc = "Links `srcs` into runfiles under `package_path`, keeping their paths below the package.",
    attrs = {
        "package_path": attr.string(mandatory = True),
        "srcs": attr.label_list(allow_files = True),
    },
)

def mapped_py_library(name, srcs, data = [], visibility = None, testonly = False, **kwargs):
    """A py_library of a folder listed in PACKAGE_DIRS, importable under its package name.

    Args:
      name: target name (the module name; the package name for `__init__.py`).
      srcs: the module's `.py` file(s), in this folder.
      data: data files in this folder, linked under the package path as well.
      visibility: as for py_library.
      testonly: as for py_library.
      **kwargs: passed to py_library (deps, tags, ...).
    """
    package_path = PACKAGE_DIRS.get(native.package_name())
    if not package_path:
        fail("%s is not a mapped package folder; use py_library" % native.package_name())
    package_dir(
        name = name + "_in_package",
        srcs = srcs + data,
        package_path = package_path,
        testonly = testonly,
        visibility = ["//visibility:private"],
    )
    py_library(
        name = name,
        srcs = srcs,
        data = data + [":" + name + "_in_package"],
        testonly = testonly,
        visibility = visibility,
        **kwargs
    )
