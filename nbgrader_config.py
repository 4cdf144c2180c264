"""Configuración de nbgrader del curso (fuentes en solutions/, versión del alumnado en notebooks/)."""

import atexit
import os
import shutil
import tempfile

c = get_config()  # noqa: F821 (lo define nbgrader)

c.CourseDirectory.course_id = "curso-peft"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
# Solo los cuadernos: los archivos de salida que deje una ejecución no se publican.
c.CourseDirectory.include = ["*.ipynb"]
# El examen de cada cuaderno (solutions/<nb>/examen.py: las preguntas del examinador y cómo se juzgan)
# es tan secreto como las pruebas ocultas: nbgrader no lo copia al publicar (notebooks/) ni al calificar.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "examen.py"]

# Lo que ve el alumnado donde estaba la solución.
c.ClearSolutions.code_stub = {"python": "# TU CÓDIGO AQUÍ\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "ESCRIBE AQUÍ TU RESPUESTA"

# Calificación: tiempo máximo por celda y sin reintentos.
c.Execute.timeout = 300
c.Execute.execute_retries = 0
# Tras la respuesta de una celda, nbclient espera su última salida (IOPub) solo 4 s por defecto y, con
# nbgrader, si no llega da la celda por fallida. En una máquina cargada (varias entregas a la vez en 2
# núcleos) esa salida llega a tardar más: la nota no puede depender de la carga de la máquina.
c.Execute.iopub_timeout = 60
# Al terminar el cuaderno, el núcleo se cierra en el acto: las salidas ya están recogidas y apagarlo
# con calma (Python descargando torch y peft) costaba varios segundos por entrega sin guardar nada.
c.Execute.shutdown_kernel = "immediate"
# Las advertencias que las bibliotecas escriben en stderr no anulan una respuesta correcta:
# nbgrader pone un 0 a una celda con cualquier salida en stderr salvo que se filtre aquí.
# Los fallos de verdad (excepciones) son salidas de error, no de stderr, y siguen contando.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"[\s\S]*"
# Si el alumnado borra una celda de pruebas, se restaura desde el libro de notas.
c.OverwriteCells.add_missing_cells = True
# La retroalimentación (HTML) no muestra el código de las pruebas ocultas.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "nbgrader.preprocessors.ClearHiddenTests",
]
c.OverwriteCells.missing_cell_notification = (
    "Esta celda (id: {cell_id}) faltaba en tu entrega y nbgrader la ha restaurado.\n\n"
)
# formgrader y la retroalimentación muestran salidas del alumnado: sin <script> ni HTML activo.
c.HTMLExporter.sanitize_html = True

# Los núcleos hablan con nbgrader por sockets de Unix en una carpeta propia de este proceso: por TCP,
# ipykernel escribe «Kernel is running over TCP without encryption» en cada cuaderno ejecutado.
# (Es lo mismo que helpers.course_files.ipc_kernel_settings, aquí sin importar el curso.)
_ipc_dir = tempfile.mkdtemp(prefix="curso-peft-nucleo-")
atexit.register(shutil.rmtree, _ipc_dir, True)
c.KernelManager.transport = "ipc"
c.KernelManager.ip = os.path.join(_ipc_dir, "k")
