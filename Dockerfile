# One image for gateways and workers: `skillwire serve` or `skillwire worker`.
FROM python:3.11-slim
WORKDIR /app
COPY protocol/ protocol/
COPY server/ server/
RUN pip install --no-cache-dir ./protocol ./server
USER nobody
EXPOSE 8000
CMD ["skillwire", "serve", "--host", "0.0.0.0", "--port", "8000"]
