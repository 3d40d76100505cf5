# The paper, built from the committed reference results only (no root, no
# measurement): `snakemake --cores 1 paper` in a writable copy of the
# source, as the README's `make paper` does.
{
  lib,
  stdenvNoCC,
  texliveBasic,
  poppler-utils,
  pythonEnv,
  src,
}:

let
  # pdflatex + bibtex (texliveBasic) and what paper/paper.tex's
  # \usepackage lines name; latexmk drives them (paper/latexmkrc)
  tex = texliveBasic.withPackages (
    ps: with ps; [
      latexmk
      geometry
      booktabs
      caption
      microtype
      xcolor
      hyperref
      url
      tools # array, longtable
      graphics # graphicx
    ]
  );
in
stdenvNoCC.mkDerivation {
  pname = "rxbench-paper";
  version = "0.1.0";
  inherit src;

  nativeBuildInputs = [
    pythonEnv
    tex
    poppler-utils
  ];

  buildPhase = ''
    runHook preBuild
    export HOME=$TMPDIR MPLCONFIGDIR=$TMPDIR/mpl PYTHONPATH=$PWD/workflow
    snakemake --cores 1 paper
    runHook postBuild
  '';

  installPhase = ''
    runHook preInstall
    install -Dm644 paper/paper.pdf $out/paper.pdf
    cp -r paper/generated $out/generated
    runHook postInstall
  '';

  passthru.tex = tex; # the devShell's LaTeX
  meta.description = "The rxbench paper, from the committed reference results";
}
