# curso-peft — órdenes principales (lee README.md).
#   make test     instala lo necesario en .venv y pasa todas las pruebas
#   make quality  ruff (estilo y errores probables) y las reglas de las habitaciones (import-linter)
#   make curso    ejecuta todos los cuadernos con el modelo embebido real
#   make lab      abre el curso en JupyterLab local (en español)
#   make release  regenera los cuadernos del alumnado (notebooks/) desde solutions/ [REF=etiqueta]
#   make web      construye el sitio web del curso en build/web/ con las salidas de `make curso`
#   make bench    mide el rendimiento en esta máquina y escribe docs/rendimiento.md
#   make referencia  los experimentos de referencia (largos, reanudables) de 05/07/08 → helpers/data/referencia.json
#   make gpu      en una GPU CUDA: cuadernos y banco en modo T4 (sección de GPU de docs/rendimiento.md)
#   make calificar ENTREGAS=<zip o carpeta> TAREA=<cuaderno>  califica una clase (profesorado)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.instalado
# JupyterLab en español: ajuste por defecto del entorno (el de cada persona, si lo cambia, manda).
LAB_ES := $(VENV)/share/jupyter/lab/settings/overrides.d/curso-peft.json
# Dónde escucha `make lab` (p. ej. make lab LAB_IP=0.0.0.0 LAB_PORT=8899 dentro de un contenedor).
LAB_IP   ?= 127.0.0.1
LAB_PORT ?= 8888
# uv pip install con las opciones que reproducen la configuración de pip de la máquina. Con
# --compile-bytecode, como pip: sin los .pyc, cada proceso que importa torch y peft tardaría el doble.
UV_PIP  = $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python $$($(BIN)/python -m helpers.maintainers.pins uv-args)
# Las pruebas usan tres procesos en la máquina de referencia, de 2 núcleos: muchas esperan a otros
# (nbgrader, núcleos de Jupyter, un presupuesto de tiempo que se agota durmiendo) y con dos la CPU
# quedaba ociosa una quinta parte del tiempo.
PYTEST_WORKERS ?= 3

.PHONY: install test test-rapido quality curso web lab release bench referencia gpu limpiar

install: $(STAMP) $(LAB_ES)

$(STAMP): pyproject.toml
	@echo "==> Creando el entorno $(VENV) e instalando las versiones fijadas de pyproject.toml"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# uv (fijado en pyproject.toml) instala las mismas versiones que pip, con los índices y ruedas
	@# de `pip config`, en menos de la mitad de tiempo. Si algo falla, se instala con pip como siempre.
	$(BIN)/python -m pip install -q "$$($(BIN)/python -m helpers.maintainers.pins installer)" \
		&& $(UV_PIP) -e ".[local,dev]" && $(UV_PIP) --no-deps $$($(BIN)/python -m helpers.maintainers.pins no-deps) \
		|| ($(BIN)/python -m pip install -q -e ".[local,dev]" \
		    && $(BIN)/python -m pip install -q --no-deps $$($(BIN)/python -m helpers.maintainers.pins no-deps))
	@# Lo que pyproject.toml dice que sobra (`without`): se instala como dependencia y nadie lo usa.
	$(BIN)/python -m pip uninstall -y -q $$($(BIN)/python -m helpers.maintainers.pins without)
	@# Chromium del sistema para la prueba en el navegador (playwright no descarga navegadores).
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| echo "AVISO: no se pudo instalar chromium (apt-get); instálalo a mano para la prueba del navegador."
	@# bubblewrap: la caja de arena del calificador de la clase (no necesita root).
	command -v bwrap >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) \
		|| echo "AVISO: no se pudo instalar bubblewrap (apt-get); instálalo a mano para calificar una clase (make calificar)."
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (curso-peft)" >/dev/null
	touch $(STAMP)

# El paquete de idioma (jupyterlab-language-pack-es-ES) lo instala pip; esto lo elige por defecto.
$(LAB_ES): $(STAMP)
	mkdir -p $(dir $(LAB_ES))
	printf '%s\n' '{"@jupyterlab/translation-extension:plugin": {"locale": "es_ES"}}' > $(LAB_ES)

# --dist loadgroup: las pruebas de un mismo xdist_group van al mismo proceso (p. ej. los lotes).
test: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

test-rapido: install
	$(BIN)/python -m pytest -m "not slow"

# Calidad del código (configuración en pyproject.toml): ruff check (pycodestyle, pyflakes, orden de las
# importaciones, bugbear, pyupgrade), ruff format --check (no cambia nada: dice qué archivos no tienen
# el formato) y lint-imports (las habitaciones de docs/arquitectura.md). Sigue aunque falle un paso,
# para ver los tres resultados, y termina con error si falló alguno.
quality: install
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	$(BIN)/lint-imports || status=1; \
	exit $$status

curso: install
	$(BIN)/python -m helpers.maintainers.course

# El sitio web del curso (Jupyter Book 1) en build/web/, con las salidas de `make curso` (no ejecuta
# nada). Sin `make curso` antes, se niega y lo dice; WEB_OPCIONES=--permitir-sin-ejecutar lo construye
# igualmente, con los cuadernos que falten (o que fallaron) sin salidas.
web: install
	$(BIN)/python -m helpers.maintainers.web $(WEB_OPCIONES)

lab: install
	@# JupyterLab se niega a arrancar como root («Running as root is not recommended»), y en un
	@# contenedor, una máquina en la nube o muchas aulas se trabaja como root: sin --allow-root el
	@# curso no se abriría. Solo se añade en ese caso; con un usuario normal no hace falta.
	@token=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(24))'); \
	root=$$(test "$$(id -u)" = 0 && echo --allow-root); \
	echo "==> JupyterLab en español con los cuadernos de notebooks/ (para pararlo: Ctrl+C)."; \
	echo "    Abre en tu navegador: http://$(LAB_IP):$(LAB_PORT)/lab?token=$$token"; \
	echo "    (¿Puerto ocupado? make lab LAB_PORT=8899)"; \
	JUPYTER_TOKEN=$$token exec $(BIN)/jupyter lab --notebook-dir=notebooks --no-browser \
		--ServerApp.ip=$(LAB_IP) --ServerApp.port=$(LAB_PORT) --ServerApp.port_retries=0 $$root

release: install
	$(BIN)/python -m helpers.maintainers.release $(if $(REF),--ref "$(REF)")

bench: install
	$(BIN)/python -m helpers.maintainers.bench

# Reanudable: cada ejecución terminada queda en build/referencia/ y no se repite; si se corta, vuelve a
# ejecutar la orden. REFERENCIA_OPCIONES="--solo 05" (un cuaderno), "--plan" (qué falta), "--horas 3".
referencia: install
	$(BIN)/python -m helpers.maintainers.referencia $(REFERENCIA_OPCIONES)

gpu: install
	$(BIN)/python -m helpers.maintainers.gpu_check

limpiar:
	rm -rf build .pytest_cache

# Califica las entregas de una clase con nbgrader (ver README, «Calificar una clase»), como tu usuario
# (sin sudo: la caja de arena es bubblewrap). Opcionales:
# CLASE=<carpeta de la clase, fuera del repositorio> PERFIL=embedded TRABAJADORES=2
.PHONY: calificar
calificar: install
	@test -n "$(ENTREGAS)" -a -n "$(TAREA)" || { echo "Uso: make calificar ENTREGAS=<zip de Moodle o carpeta> TAREA=<cuaderno, p. ej. 01_introduccion_peft> [CLASE=<carpeta>] [PERFIL=embedded] [TRABAJADORES=2]"; exit 2; }
	$(BIN)/python -m helpers.classroom calificar --entregas "$(ENTREGAS)" --tarea "$(TAREA)" \
		$(if $(CLASE),--clase "$(CLASE)") $(if $(PERFIL),--perfil "$(PERFIL)") $(if $(TRABAJADORES),--trabajadores "$(TRABAJADORES)")
