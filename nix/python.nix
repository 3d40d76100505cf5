# The Python environment of the devShell, the paper and the checks, from the
# project's one dependency list: the names in requirements.txt (read here),
# each taken from the pinned nixpkgs, or built with buildPythonPackage from
# PyPI's wheel where nixpkgs lacks it (MLRsearch, python-grid5000: no
# python-modules/ entry in nixpkgs). Versions: nixpkgs' own for the former
# (they differ from requirements.lock's pip pins; the lock is what `make
# setup` installs), requirements.txt's for the latter (a test checks that
# versions.yaml's python.wheels agree with requirements.txt).
{
  lib,
  python3,
  fetchurl,
  snakemake,
  pins,
}:

let
  py = python3.pkgs;

  # "name==version  # comment" -> "name"; comments and blank lines skipped
  requirementNames =
    let
      lines = lib.splitString "\n" (builtins.readFile ../requirements.txt);
      name = l: builtins.match "[[:space:]]*([A-Za-z0-9._-]+)[[:space:]]*(==.*)?" l;
    in
    map (m: builtins.head m) (builtins.filter (m: m != null) (map name lines));

  wheel =
    name: deps:
    let
      w = pins.python.wheels.${name};
    in
    py.buildPythonPackage {
      pname = name;
      inherit (w) version;
      format = "wheel";
      src = fetchurl { inherit (w) url hash; };
      dependencies = deps;
      pythonImportsCheck = [ ];
    };

  # requirements.txt name -> package
  byName = {
    # snakemake is an application in nixpkgs (pkgs/by-name/sn/snakemake);
    # rxbench also imports it (provenance), hence toPythonModule
    snakemake = py.toPythonModule snakemake;
    pandas = py.pandas;
    matplotlib = py.matplotlib;
    pyyaml = py.pyyaml;
    jinja2 = py.jinja2;
    jsonschema = py.jsonschema;
    pytest = py.pytest;
    scipy = py.scipy;
    MLRsearch = wheel "MLRsearch" [ ];
    python-grid5000 = wheel "python-grid5000" (
      with py;
      [
        requests
        pyyaml
        ipython
      ]
    );
  };

  unmapped = builtins.filter (n: !(byName ? ${n})) requirementNames;
in
assert lib.assertMsg (unmapped == [ ])
  "nix/python.nix: requirements.txt names without a package here: ${toString unmapped}";
python3.withPackages (_: map (n: byName.${n}) requirementNames)
