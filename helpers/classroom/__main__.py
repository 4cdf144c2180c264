"""``python -m helpers.classroom``: órdenes del calificador de la clase (en español)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..cli import ArgumentParser

DEFAULT_CLASS_DIR = "~/curso-peft-clase"


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m helpers.classroom",
        description="Califica las entregas de una clase con nbgrader (libro de notas SQLite), con el "
        "código del alumnado aislado, retroalimentación en HTML y un CSV de notas.",
    )
    sub = parser.add_subparsers(dest="orden", metavar="ORDEN", required=True)
    cal = sub.add_parser(
        "calificar",
        help="importa, califica y exporta las entregas de una tarea",
        description="Importa las entregas (zip de Moodle «Descargar todas las entregas» o carpeta "
        "<alumno>/<cuaderno>.ipynb), las califica con nbgrader contra el cuaderno publicado y "
        "escribe CLASE/calificaciones.csv y CLASE/retroalimentacion/. Repetir la orden reutiliza "
        "lo ya calificado.",
    )
    cal.add_argument("--entregas", required=True, type=Path, help="zip de Moodle o carpeta con las entregas")
    cal.add_argument(
        "--tarea", required=True, help="cuaderno(s) que se califican, separados por comas (p. ej. 01_introduccion_peft)"
    )
    cal.add_argument(
        "--clase",
        type=Path,
        default=Path(DEFAULT_CLASS_DIR).expanduser(),
        help=f"carpeta de la clase, fuera del repositorio (por defecto {DEFAULT_CLASS_DIR})",
    )
    cal.add_argument(
        "--perfil",
        default="tiny",
        choices=["tiny", "embedded"],
        help="modelo con el que se ejecutan los cuadernos: tiny (rápido, por defecto) o "
        "embedded (el modelo real, mucho más lento)",
    )
    cal.add_argument("--trabajadores", type=int, default=1, help="entregas que se califican a la vez (por defecto 1)")
    cal.add_argument("--tiempo-celda", type=int, default=300, help="segundos máximos por celda (por defecto 300)")
    cal.add_argument(
        "--tiempo-total", type=int, default=1800, help="segundos máximos para un cuaderno entero (por defecto 1800)"
    )
    cal.add_argument(
        "--memoria",
        type=float,
        default=None,
        help="GiB de memoria para el núcleo de cada entrega (por defecto el 80 %% de la RAM "
        "repartido entre los trabajadores)",
    )
    cal.add_argument("--forzar", action="store_true", help="vuelve a calificar también lo ya calificado")
    cal.add_argument(
        "--sin-aislamiento",
        action="store_true",
        help="ejecuta el código del alumnado SIN caja de arena (solo si confías en todas las entregas)",
    )
    chk = sub.add_parser(
        "comprobar-aislamiento",
        help="comprueba que la caja de arena funciona en esta máquina",
        description="Ejecuta código de prueba en la caja de arena e informa de qué puede y qué no "
        "puede hacer (leer soluciones, escribir fuera, red...).",
    )
    chk.add_argument(
        "--clase",
        type=Path,
        default=Path(DEFAULT_CLASS_DIR).expanduser(),
        help=f"carpeta de la clase (por defecto {DEFAULT_CLASS_DIR})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .batch import BatchError, check_class_dir, default_memory_bytes, run
    from .grading import Settings

    if args.orden == "comprobar-aislamiento":
        from .probe import main as probe_main

        try:
            check_class_dir(args.clase)
        except BatchError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 2
        return probe_main(args.clase)
    workers = max(1, args.trabajadores)
    memory = int(args.memoria * 1024**3) if args.memoria else default_memory_bytes(workers)
    settings = Settings(
        class_dir=str(args.clase),
        profile=args.perfil,
        cell_timeout=args.tiempo_celda,
        total_budget=args.tiempo_total,
        memory_bytes=memory,
        sandbox=not args.sin_aislamiento,
        threads=max(1, (__import__("os").cpu_count() or 1) // workers),
    )
    if args.sin_aislamiento:
        print(
            "AVISO: el código del alumnado se ejecutará SIN aislamiento: puede leer y cambiar cualquier "
            "archivo de esta máquina al que tengas acceso.",
            file=sys.stderr,
        )
    notebooks = [n.strip() for n in args.tarea.split(",") if n.strip()]
    try:
        run(
            source=args.entregas,
            notebooks=notebooks,
            class_dir=args.clase,
            settings=settings,
            workers=workers,
            force=args.forzar,
        )
    except BatchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrumpido. Lo ya calificado está guardado: repite la orden para terminar.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
